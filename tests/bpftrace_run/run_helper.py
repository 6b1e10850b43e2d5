"""The tiny helper tests/test_bpftrace_run.py runs a program with: pybpf.bpftrace's
session.run with bpftrace's handshake and environment (argv: [-f json] [-c CMD]
[-o FILE] [--unsafe] FILE ARGS...; BPFTRACE_PERF_RB_PAGES, _MAP_KEYS_MAX, _STRLEN,
_CAT_BYTES_MAX read from the environment)."""
import os
import sys

from pybpf.bpftrace.session import TraceOptions, run

args = sys.argv[1:]
opts = TraceOptions()
while args[:1] in (["-f"], ["-c"], ["-o"], ["--unsafe"]):
    if args[0] == "--unsafe":
        opts.unsafe = True
        args = args[1:]
        continue
    if args[0] == "-f":
        opts.output_format = args[1]
    elif args[0] == "-c":
        opts.command = args[1]
    else:
        opts.output_path = args[1]
    args = args[2:]
for name, attr in (("BPFTRACE_PERF_RB_PAGES", "perf_rb_pages"),
                   ("BPFTRACE_MAP_KEYS_MAX", "map_keys_max"),
                   ("BPFTRACE_STRLEN", "strlen"), ("BPFTRACE_CAT_BYTES_MAX", "cat_bytes_max")):
    if name in os.environ:
        setattr(opts, attr, int(os.environ[name]))
path, opts.params = args[0], args[1:]
opts.notify_attached = "__BPFTRACE_NOTIFY_PROBES_ATTACHED" in os.environ
with open(path) as fh:
    source = fh.read()
sys.exit(run(source, path, opts))
