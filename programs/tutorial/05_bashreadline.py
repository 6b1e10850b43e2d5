#!/usr/bin/env python3
"""Lesson 5, uprobes: trace a function of a user program.

``@uretprobe("/bin/bash:readline")`` runs when bash's ``readline()`` returns: the
kernel puts a breakpoint at the address of the ``readline`` symbol in the file (found
in its ELF symbol table), for every process running that file. ``ctx.retval`` is the
returned ``char *``, a user-space pointer: ``probe_read_user_str`` copies the line.
"""

from pybpf.dsl import comm, pid, probe_read_user_str, uretprobe
from pybpf.tooling import ToolParser, load_tool, run_tool, tool_main


@uretprobe("/bin/bash:readline")
def bash_readline(ctx):
    if ctx.retval == 0:
        return 0
    line = probe_read_user_str(ctx.retval, 80)
    task = comm()
    print(f"{pid():<7} {task:<16} {line}")
    return 0


def main(argv=None) -> int:
    ToolParser("05_bashreadline", "Print commands entered in bash").parse_args(argv)
    with load_tool(__name__) as mod:
        print(f"{'PID':<7} {'COMM':<16} COMMAND")
        run_tool(mod)
    return 0


if __name__ == "__main__":
    tool_main(main)
