#!/usr/bin/env python3
"""Lesson 19, USDT probes: trace the points a program's authors marked for tracing.

A USDT (user statically defined tracing) probe is a ``nop`` that the program's
authors placed with ``sys/sdt.h`` (``STAP_PROBE2(tutorial, request, id, path)``), with
an ELF note saying where the probe is and where each argument lives at that point.
``@usdt("BINARY:tutorial:request")`` reads the notes, puts a uprobe on the ``nop`` and
compiles ``ctx.arg0``, ``ctx.arg1`` into reads of those places (a register, a stack
slot...), whatever the compiler chose. BCC's lesson traced the ``http__server__request``
probe of node.js; ``19_usdt_server.c`` here is a small stand-in with one probe per
"request" whose second argument is the path (a ``char *``, read with
``probe_read_user_str``).

Build the traced program, then run the lesson and the program::

    gcc -O2 -o /tmp/usdt_server programs/tutorial/19_usdt_server.c
    python3 programs/tutorial/19_usdt.py /tmp/usdt_server &
    /tmp/usdt_server /index.html /about

Below, this build's note says ``Arguments: -8@%rbx 8@%rsi``: ``arg1`` is ``%rsi``,
read from the saved registers (``pt_regs``, offset 0x68); ``call 0x72`` is
``bpf_probe_read_user_str``.

``pybpf compile --disasm -f request programs/tutorial/19_usdt.py`` (with the program
built at /tmp/usdt_server by the ``gcc -O2`` line above), the key line::

    ; programs/tutorial/19_usdt.py:46      path = probe_read_user_str(ctx.arg1, 64)
         1: r7 = *(u64 *)(r6 + 0x68)
         2: r1 = r10
         3: r1 += -0x40
         4: r2 = 0x40
         5: r3 = r7
         6: call 0x72
"""

import argparse
import os

from pybpf.dsl import pid, probe_read_user_str, retarget, usdt
from pybpf.tooling import ToolParser, load_tool, run_tool, tool_main

DEFAULT_BINARY = "/tmp/usdt_server"


@usdt(f"{DEFAULT_BINARY}:tutorial:request")
def request(ctx):
    path = probe_read_user_str(ctx.arg1, 64)
    print(f"{pid():<7} request {ctx.arg0}: {path}")
    return 0


def binary_arg(text: str) -> str:
    """argparse type for the traced program: a file that exists."""
    if not os.path.isfile(text):
        raise argparse.ArgumentTypeError(
            f"no such file: {text!r} (build the lesson's server: gcc -O2 -o {text} "
            "programs/tutorial/19_usdt_server.c)")
    return text


def main(argv=None) -> int:
    parser = ToolParser("19_usdt", "Trace the tutorial:request USDT probe of a program")
    parser.add_argument("binary", nargs="?", default=DEFAULT_BINARY, type=binary_arg,
                        help=f"the traced program (default {DEFAULT_BINARY}, built from "
                             "programs/tutorial/19_usdt_server.c)")
    args = parser.parse_args(argv)
    retarget(request, usdt(f"{os.path.abspath(args.binary)}:tutorial:request"))
    with load_tool(__name__) as mod:
        print(f"{'PID':<7} REQUEST")
        run_tool(mod)
    return 0


if __name__ == "__main__":
    tool_main(main)
