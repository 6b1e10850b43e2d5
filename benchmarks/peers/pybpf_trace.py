#!/usr/bin/env python3
"""A bpftrace program run by pybpf (``pybpf.bpftrace.session.run``), for
benchmarks/trace.py while ``pybpf trace`` has no command line of its own (needs root).

usage: python3 benchmarks/peers/pybpf_trace.py [-B none|line|full] (-e PROGRAM | FILE)
                                               [ARGS...]

The subset of bpftrace's options the benchmark needs: ``-B`` (output buffering; absent:
session.run's default) and the program as ``-e`` text or a file; the arguments after it
are ``$1``.. With ``__BPFTRACE_NOTIFY_PROBES_ATTACHED`` in the environment it prints
bpftrace's handshake on stderr once attached.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from pybpf.bpftrace.session import TraceOptions, run  # noqa: E402


def main(argv: list) -> int:
    opts = TraceOptions()
    if argv[:1] == ["-B"]:
        opts.buffering, argv = argv[1], argv[2:]
    if argv[:1] == ["-e"]:
        source, filename, argv = argv[1], "stdin", argv[2:]
    elif argv:
        filename, argv = argv[0], argv[1:]
        with open(filename) as fh:
            source = fh.read()
    else:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    opts.params = list(argv)
    opts.notify_attached = "__BPFTRACE_NOTIFY_PROBES_ATTACHED" in os.environ
    return run(source, filename, opts)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
