#!/usr/bin/env python3
"""Lesson 3, fentry/fexit: kprobes' faster successors, attached through BTF.

``@fentry("do_unlinkat")`` runs at the function's entry like a kprobe, but through a
BPF trampoline (no breakpoint) and with its arguments typed by BTF. ``@fexit`` runs at
the return and sees both the arguments and ``ctx.retval``: one program knows the path
and the result, with no map between entry and exit. (Linux 5.5; the tests run this
lesson in a VM.)
"""

from pybpf.dsl import fentry, fexit, pid, probe_read_kernel_str
from pybpf.tooling import ToolParser, load_tool, run_tool, tool_main


@fentry("do_unlinkat")
def unlink_entry(ctx):
    path = probe_read_kernel_str(ctx.name.name, 64)
    print(f"fentry: pid = {pid()}, filename = {path}")
    return 0


@fexit("do_unlinkat")
def unlink_exit(ctx):
    path = probe_read_kernel_str(ctx.name.name, 64)
    ret = ctx.retval
    print(f"fexit: pid = {pid()}, filename = {path}, ret = {ret}")
    return 0


def main(argv=None) -> int:
    ToolParser("03_fentry_unlink", "Trace unlink() through fentry/fexit").parse_args(argv)
    with load_tool(__name__) as mod:
        print("Tracing do_unlinkat()... Hit Ctrl-C to end.")
        run_tool(mod)
    return 0


if __name__ == "__main__":
    tool_main(main)
