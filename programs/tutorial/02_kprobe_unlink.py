#!/usr/bin/env python3
"""Lesson 2, kprobes: run at the entry and the return of a kernel function.

``@kprobe("do_unlinkat")`` runs when the kernel enters ``do_unlinkat(int dfd, struct
filename *name)``; the arguments come by name from the function's BTF prototype, so
``ctx.name.name`` follows the pointer to the path string, copied with
``probe_read_kernel_str``. ``@kretprobe`` runs when it returns, with ``ctx.retval``.
``print()`` sends the line to user space through the tool's ring buffer. (Kprobes
need CONFIG_KPROBES; the tests run this lesson in a VM.)
"""

from pybpf.dsl import kprobe, kretprobe, pid, probe_read_kernel_str
from pybpf.tooling import ToolParser, load_tool, run_tool, tool_main


@kprobe("do_unlinkat")
def unlink_entry(ctx):
    path = probe_read_kernel_str(ctx.name.name, 64)
    print(f"KPROBE ENTRY pid = {pid()}, filename = {path}")
    return 0


@kretprobe("do_unlinkat")
def unlink_exit(ctx):
    ret = ctx.retval
    print(f"KPROBE EXIT: pid = {pid()}, ret = {ret}")
    return 0


def main(argv=None) -> int:
    ToolParser("02_kprobe_unlink", "Trace unlink() through kprobes").parse_args(argv)
    with load_tool(__name__) as mod:
        print("Tracing do_unlinkat()... Hit Ctrl-C to end.")
        run_tool(mod)
    return 0


if __name__ == "__main__":
    tool_main(main)
