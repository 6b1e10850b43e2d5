"""The tiny helper tests/test_bpftrace_run.py runs a program with: pybpf.bpftrace's
session.run with bpftrace's handshake and environment (argv: [-f json] [-c CMD] [-p PID] [--unsafe] [-q]
[--usdt-file-activation] FILE ARGS...)."""
import os
import sys

from pybpf.bpftrace.session import TraceOptions, run

args = sys.argv[1:]
opts = TraceOptions()
while args and args[0].startswith("-"):
    if args[:2] == ["-f", "json"]:
        opts.output_format = "json"
    elif args[0] == "-c":
        opts.command = args[1]
    elif args[0] == "-p":
        opts.pid = int(args[1])
    elif args[0] in ("--unsafe", "--usdt-file-activation", "-q", "--extensions"):
        setattr(opts, {"--unsafe": "unsafe", "-q": "quiet", "--extensions": "extensions"}
                .get(args[0], "usdt_file_activation"), True)
        args = args[1:]
        continue
    args = args[2:]
path, opts.params = args[0], args[1:]
opts.notify_attached = "__BPFTRACE_NOTIFY_PROBES_ATTACHED" in os.environ
with open(path) as fh:
    source = fh.read()
sys.exit(run(source, path, opts))
