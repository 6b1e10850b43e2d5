#!/usr/bin/env python3
"""bashreadline: print bash commands from all running bash shells, like BCC's
bashreadline.

A uretprobe on ``readline()`` runs when bash has read a command line: ``ctx.retval``
is the returned ``char *``, a user-space pointer the program copies with
``probe_read_user_str``. ``readline`` lives in the bash binary itself when bash links
readline statically (Debian, Fedora), else in ``libreadline.so``: the tool looks for
the symbol in bash first. Other programs may use libreadline too, so only tasks named
``bash`` are reported.
"""

import time

from pybpf.dsl import (
    RingBuf, Struct, char, comm, pid, probe_read_user_str, retarget, u32, uretprobe,
)
from pybpf.tooling import ToolParser, load_tool, run_tool, tool_main


class Line(Struct):
    pid: u32
    str: char[80]


events = RingBuf(Line, size=256 * 1024)


@uretprobe("/bin/bash:readline")            # re-aimed in main() at the file that has it
def bashreadline_ret(ctx):
    if ctx.retval == 0:
        return 0
    task = comm()
    if task != "bash":
        return 0
    e = Line()
    e.pid = pid()
    e.str = probe_read_user_str(ctx.retval)
    events.output(e)
    return 0


def readline_binary(bash: str = "/bin/bash") -> str:
    """The file defining ``readline``: ``bash`` itself, else the libreadline it uses."""
    from pybpf.elf.libs import resolve_library
    from pybpf.elf.symbols import ElfFile
    with ElfFile(bash) as elf:
        try:
            elf.symbol("readline")
            return bash
        except LookupError:
            pass
    return resolve_library("readline")


def main(argv=None) -> int:
    parser = ToolParser("bashreadline", "Print entered bash commands from all running shells",
                        examples=["./bashreadline                  # trace /bin/bash",
                                  "./bashreadline -s /lib/libreadline.so   # that library"])
    parser.add_argument("-s", "--shared",
                        help="specify the location of libreadline.so library "
                             "(default: /bin/bash if it has readline, else libreadline)")
    args = parser.parse_args(argv)
    retarget(bashreadline_ret, uretprobe(f"{args.shared or readline_binary()}:readline"))

    def show(e: Line) -> None:
        print(f"{time.strftime('%H:%M:%S'):<9} {e.pid:<7} {e.str}")

    with load_tool(__name__) as mod:
        mod.on("events", show)
        run_tool(mod, header=f"{'TIME':<9} {'PID':<7} COMMAND")
    return 0


if __name__ == "__main__":
    tool_main(main)
