"""The tiny helper tests/test_bpftrace_run.py runs a program with: pybpf.bpftrace's
session.run with bpftrace's handshake and environment (argv: [-f FORMAT] [-c CMD]
[-o FILE] [-p PID] [--unsafe] [-q] [--usdt-file-activation] [--extensions] FILE ARGS...;
BPFTRACE_PERF_RB_PAGES, _MAP_KEYS_MAX, _STRLEN, _CAT_BYTES_MAX read from the
environment)."""
import os
import sys

from pybpf.bpftrace.session import TraceOptions, run

args = sys.argv[1:]
opts = TraceOptions()
FLAGS = {"--unsafe": "unsafe", "-q": "quiet", "--extensions": "extensions",
         "--usdt-file-activation": "usdt_file_activation"}
while args and args[0].startswith("-"):
    if args[0] in FLAGS:
        setattr(opts, FLAGS[args[0]], True)
        args = args[1:]
        continue
    if args[0] == "-f":
        opts.output_format = args[1]
    elif args[0] == "-c":
        opts.command = args[1]
    elif args[0] == "-o":
        opts.output_path = args[1]
    elif args[0] == "-p":
        opts.pid = int(args[1])
    else:
        raise SystemExit(f"run_helper: unknown option {args[0]}")
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
