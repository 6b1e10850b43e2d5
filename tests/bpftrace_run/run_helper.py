"""The tiny helper tests/test_bpftrace_run.py runs a program with: pybpf.bpftrace's
session.run with bpftrace's handshake and environment (argv: [-f json] FILE ARGS...)."""
import os
import sys

from pybpf.bpftrace.session import TraceOptions, run

args = sys.argv[1:]
opts = TraceOptions()
if args[:2] == ["-f", "json"]:
    opts.output_format = "json"
    args = args[2:]
if args[:1] == ["-c"]:
    opts.command = args[1]
    args = args[2:]
path, opts.params = args[0], args[1:]
opts.notify_attached = "__BPFTRACE_NOTIFY_PROBES_ATTACHED" in os.environ
with open(path) as fh:
    source = fh.read()
sys.exit(run(source, path, opts))
