#!/usr/bin/env python3
"""Lesson 17, tracepoint arguments: who asks the kernel for random bytes, and how many.

A tracepoint's arguments are the fields its ``format`` file lists
(``/sys/kernel/tracing/events/syscalls/sys_enter_getrandom/format``: ``ubuf``,
``len``, ``flags``); ``args.len`` reads one, at the offset and size the format
gives, and ``pybpf list -v 'tracepoint:syscalls:sys_enter_getrandom'`` shows them.

BCC's lesson used ``random:urandom_read`` and its ``got_bits``. That tracepoint was
removed in Linux 5.18 (the random driver was rewritten) and this kernel has none. Its
replacement here is the entry of ``getrandom()``, through which glibc, Python's
``os.urandom`` and most programs read the kernel's random pool now; ``GOTBITS`` is the
requested ``len`` times 8. (Reads of ``/dev/urandom`` itself go through ``read()``,
which names only a file descriptor; this lesson leaves them out.)

``pybpf compile --disasm -f getrandom_entry programs/tutorial/17_urandomread.py``, the key line::

    ; programs/tutorial/17_urandomread.py:29      bits = args.len * 8
         0: r7 = *(u64 *)(r1 + 0x18)
         1: r7 *= 0x8
"""

from pybpf.dsl import comm, ktime_ns, pid, tracepoint
from pybpf.tooling import ToolParser, load_tool, run_tool, tool_main


@tracepoint("syscalls:sys_enter_getrandom")
def getrandom_entry(args):
    bits = args.len * 8
    task = comm()
    print(f"{ktime_ns() // 1000:<18} {task:<16} {pid():<6} {bits}")
    return 0


def main(argv=None) -> int:
    ToolParser("17_urandomread", "Trace getrandom() calls: who asks for random bits"
               ).parse_args(argv)
    with load_tool(__name__) as mod:
        print(f"{'TIME(us)':<18} {'COMM':<16} {'PID':<6} GOTBITS")
        run_tool(mod)
    return 0


if __name__ == "__main__":
    tool_main(main)
