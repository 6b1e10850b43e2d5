#!/usr/bin/env python3
"""Lesson 18, a uprobe on a library function: count the strings passed to strlen().

``@uprobe("c:strlen")`` would put a breakpoint on libc's ``strlen`` for every process
that maps libc. The program reads the first argument (``ctx.arg0``, a user-space
``char *``) with ``probe_read_user_str`` into a ``Key`` struct, and the struct itself
is the hash map key: ``counts[k] += 1`` counts each distinct string (its first 79
bytes). User space sorts the map at the end.

One catch: in glibc, ``strlen`` is an IFUNC. The symbol is a resolver, called once by
the dynamic linker to pick the variant for this CPU (SSE2, AVX2, EVEX...); calls then go
to the variant: a uprobe on the symbol fires at most once per process (when the resolver
runs), never for the calls. This lesson asks the dynamic linker the same question
(``ctypes`` looks ``strlen`` up, which returns the chosen variant), turns that address
into an offset from the ``strlen`` symbol, and attaches there with ``retarget(count,
uprobe("libc...:strlen+0x..."))``. ``-p PID`` limits the probe to one process.

Below, ``arg0`` is read from the saved registers (``pt_regs``, offset 0x70: ``%rdi``)
and ``call 0x72`` is ``bpf_probe_read_user_str``.

``pybpf compile --disasm -f count programs/tutorial/18_strlen_count.py``, the key line::

    ; programs/tutorial/18_strlen_count.py:53      k.c = probe_read_user_str(ctx.arg0, 80)
        15: r7 = *(u64 *)(r6 + 0x70)
        16: r1 = r10
        17: r1 += -0x50
        18: r2 = 0x50
        19: r3 = r7
        20: call 0x72
"""

import ctypes
import os

from pybpf.dsl import HashMap, Struct, char, probe_read_user_str, retarget, u64, uprobe
from pybpf.elf.libs import resolve_library
from pybpf.elf.symbols import ElfFile
from pybpf.tooling import ToolParser, load_tool, pid_number, run_tool, text_of, tool_main


class Key(Struct):
    c: char[80]


counts = HashMap(Key, u64, max_entries=10240)


@uprobe("c:strlen")
def count(ctx):
    if ctx.arg0 == 0:
        return 0
    k = Key()
    k.c = probe_read_user_str(ctx.arg0, 80)
    counts[k] += 1
    return 0


def strlen_target() -> str:
    """``"LIBC:strlen+OFF"``: the strlen variant this machine's dynamic linker chose
    (the one this process calls), as an offset from the IFUNC ``strlen`` symbol."""
    path = resolve_library("c")
    chosen = ctypes.cast(ctypes.CDLL(path).strlen, ctypes.c_void_p).value
    real, base = os.path.realpath(path), None
    with open("/proc/self/maps") as maps:
        for line in maps:
            parts = line.split()
            if len(parts) >= 6 and os.path.realpath(parts[5]) == real and int(parts[2], 16) == 0:
                base = int(parts[0].split("-")[0], 16)
                break
    if base is None or not chosen:
        raise LookupError(f"{path} is not mapped in this process: cannot find the strlen "
                          "variant its dynamic linker chose")
    with ElfFile(path) as elf:
        off = chosen - base - elf.symbol("strlen").value
    if off < 0:
        raise LookupError(f"strlen's variant lies before the strlen symbol in {path}: "
                          "this lesson cannot name it as strlen+OFF")
    return f"{path}:strlen+{off:#x}"


def main(argv=None) -> int:
    parser = ToolParser("18_strlen_count", "Count the strings passed to libc's strlen()")
    parser.add_argument("-p", "--pid", type=pid_number, default=-1, help="trace this PID only")
    args = parser.parse_args(argv)
    retarget(count, uprobe(strlen_target(), pid=args.pid))
    with load_tool(__name__) as mod:
        print("Tracing strlen()... Hit Ctrl-C to end.")
        run_tool(mod)
        print(f"{'COUNT':>10} STRING")
        for k, n in sorted(mod["counts"].items(), key=lambda kv: int(kv[1])):
            print(f'{int(n):>10} "{text_of(k.c)}"')     # map keys keep char[] as bytes
    return 0


if __name__ == "__main__":
    tool_main(main)
