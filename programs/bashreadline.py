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

import json
import time

from pybpf.dsl import (
    RingBuf, Struct, char, comm, pid, probe_read_user_str, retarget, u32, uretprobe,
)
from pybpf.tooling import ToolParser, load_tool, run_tool, text_of, tool_main, write_lines


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


def batch_printer(args):
    """The callback of ``mod.on("events", ..., rows=True)``: one line (or JSON object)
    per command, a batch written in one block; the clock is read once per batch."""

    def show(rows) -> None:
        now = time.strftime("%H:%M:%S")
        if args.json:
            write_lines([json.dumps({"time": now, "pid": pid, "command": text_of(line)})
                         for pid, line in rows])
        else:
            write_lines([f"{now:<9} {pid:<7} {text_of(line)}" for pid, line in rows])

    return show


def main(argv=None) -> int:
    parser = ToolParser("bashreadline", "Print entered bash commands from all running shells",
                        examples=["./bashreadline                  # trace /bin/bash",
                                  "./bashreadline -s /lib/libreadline.so   # that library"])
    parser.add_argument("-s", "--shared",
                        help="specify the location of libreadline.so library "
                             "(default: /bin/bash if it has readline, else libreadline)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per command (NDJSON), keys: the columns")
    args = parser.parse_args(argv)
    retarget(bashreadline_ret, uretprobe(f"{args.shared or readline_binary()}:readline"))

    with load_tool(__name__) as mod:
        mod.on("events", batch_printer(args), rows=True)
        run_tool(mod, header=None if args.json else f"{'TIME':<9} {'PID':<7} COMMAND",
                 json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
