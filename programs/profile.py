#!/usr/bin/env python3
"""profile: sample stack traces at a timed interval, like BCC's profile.

A CPU-clock perf event on every CPU runs the program ``frequency`` times a second
(``perf_event(frequency=F)`` applied at run time, since F comes from the command line).
Each sample asks the kernel for the interrupted task's kernel and user stacks
(``stacks.stackid()`` / ``stacks.stackid(user=True)``: ids into a stack trace map) and
counts the (pid, comm, kernel stack, user stack) key. At the end the stacks are turned
into names: kernel addresses through ``/proc/kallsyms``, user addresses through the ELF
symbol tables of the files the process has mapped (``/proc/PID/maps``).
"""

import bisect
import os

from pybpf.dsl import (
    HashMap, StackTraceMap, Struct, char, comm, const, cpu, i32, perf_event, pid, tid, u32,
    u64,
)
from pybpf.elf.libs import proc_maps
from pybpf.elf.symbols import PT_LOAD, STT_FUNC, STT_GNU_IFUNC, ElfFile
from pybpf.tooling import (
    ToolParser, cpu_number, frequency_hz, load_tool, pid_number, run_tool,
    tid_number, tool_main, whole_seconds,
)

EFAULT = 14                           # stackid(): no stack of that kind (user mode)


class Key(Struct):
    pid: u32
    kstack: i32
    ustack: i32
    comm: char[16]


counts = HashMap(Key, u64, max_entries=40960)
stacks = StackTraceMap(16384)
TARGET_PID = const(u32, 0)
TARGET_TID = const(u32, 0)
INCLUDE_IDLE = const(u32, 0)
FILTER_CPU = const(u32, 0)
TARGET_CPU = const(u32, 0)
USER_STACKS = const(u32, 1)
KERNEL_STACKS = const(u32, 1)


def do_sample(ctx):
    if pid() == 0 and not INCLUDE_IDLE:
        return 0
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    if TARGET_TID and tid() != TARGET_TID:
        return 0
    if FILTER_CPU and cpu() != TARGET_CPU:
        return 0
    k = Key()
    k.pid = pid()
    k.comm = comm()
    k.kstack = -1
    k.ustack = -1
    if KERNEL_STACKS:
        k.kstack = stacks.stackid()
    if USER_STACKS:
        k.ustack = stacks.stackid(user=True)
    counts[k] += 1
    return 0


# -- symbols ---------------------------------------------------------------------------
class KernelSymbols:
    """Kernel addresses to names, from /proc/kallsyms."""

    def __init__(self) -> None:
        pairs = []
        with open("/proc/kallsyms") as f:
            for line in f:
                addr, kind, name = line.split()[:3]
                if kind in "tTwW" and int(addr, 16) and not name.startswith("__pfx_"):
                    pairs.append((int(addr, 16), name))
        pairs.sort()
        self.addrs = [a for a, _ in pairs]
        self.names = [n for _, n in pairs]

    def name(self, addr: int) -> str:
        i = bisect.bisect_right(self.addrs, addr) - 1
        return self.names[i] if i >= 0 else "[unknown]"


class FileSymbols:
    """One ELF file's functions, by virtual address, and its loadable segments."""

    def __init__(self, path: str) -> None:
        self.starts, self.ends, self.names = [], [], []
        self.segments = []
        try:
            with ElfFile(path) as elf:
                self.segments = [s for s in elf.segments if s.type == PT_LOAD]
                syms = {}
                for table in (".symtab", ".dynsym"):
                    for s in elf.iter_symbols(table):
                        if s.type in (STT_FUNC, STT_GNU_IFUNC) and s.value and s.defined:
                            syms.setdefault(s.value, (s.size, s.name))
        except (OSError, ValueError):
            return
        for value in sorted(syms):
            size, name = syms[value]
            self.starts.append(value)
            self.ends.append(value + max(size, 1))
            self.names.append(name)

    def name(self, file_offset: int) -> str:
        for seg in self.segments:               # file offset -> link-time address
            if seg.offset <= file_offset < seg.offset + seg.filesz:
                vaddr = file_offset - seg.offset + seg.vaddr
                i = bisect.bisect_right(self.starts, vaddr) - 1
                if i >= 0 and vaddr < self.ends[i]:
                    return self.names[i]
        return ""


class UserSymbols:
    """User addresses of processes to names, through their mapped files."""

    def __init__(self) -> None:
        self.maps = {}
        self.files = {}

    def name(self, pid: int, addr: int) -> str:
        if pid not in self.maps:
            try:
                self.maps[pid] = [m for m in proc_maps(pid) if m.path.startswith("/")]
            except (ProcessLookupError, PermissionError):
                self.maps[pid] = []
        for m in self.maps[pid]:
            if m.start <= addr < m.end:
                path = f"/proc/{pid}/root{m.path}" if os.path.exists(
                    f"/proc/{pid}/root{m.path}") else m.path
                if path not in self.files:
                    self.files[path] = FileSymbols(path)
                return self.files[path].name(addr - m.start + m.offset) or "[unknown]"
        return "[unknown]"


def main(argv=None) -> int:
    parser = ToolParser("profile", "Profile CPU stack traces at a timed interval",
                        examples=[
                            "./profile             # profile stack traces at 49 Hertz "
                            "until Ctrl-C",
                            "./profile -F 99       # profile stack traces at 99 Hertz",
                            "./profile 5           # profile at 49 Hertz for 5 seconds only",
                            "./profile -f 5        # output in folded format for flame graphs",
                            "./profile -p 185      # only profile process with PID 185",
                            "./profile -U          # only show user space stacks (no kernel)",
                            "./profile -K          # only show kernel space stacks (no user)",
                        ])
    who = parser.add_mutually_exclusive_group()
    who.add_argument("-p", "--pid", type=pid_number, default=0, help="profile process with this "
                     "PID only")
    who.add_argument("-L", "--tid", type=tid_number, default=0, help="profile thread with this "
                     "TID only")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("-U", "--user-stacks-only", action="store_true",
                       help="show stacks from user space only (no kernel space stacks)")
    which.add_argument("-K", "--kernel-stacks-only", action="store_true",
                       help="show stacks from kernel space only (no user space stacks)")
    parser.add_argument("-F", "--frequency", type=frequency_hz, default=49,
                        help="sample frequency, Hertz")
    parser.add_argument("-d", "--delimited", action="store_true",
                        help="insert delimiter between kernel/user stacks")
    parser.add_argument("-a", "--annotations", action="store_true",
                        help="add _[k] annotations to kernel frames")
    parser.add_argument("-I", "--include-idle", action="store_true",
                        help="include CPU idle stacks")
    parser.add_argument("-C", "--cpu", type=cpu_number, help="cpu number to run profile on")
    parser.add_argument("-f", "--folded", action="store_true",
                        help="output folded format, one line per stack (for flame graphs)")
    parser.add_argument("duration", nargs="?", type=whole_seconds,
                        help="duration of trace, in seconds")
    args = parser.parse_args(argv)

    perf_event(frequency=args.frequency)(do_sample)
    consts = {"TARGET_PID": args.pid, "TARGET_TID": args.tid,
              "INCLUDE_IDLE": int(args.include_idle),
              "FILTER_CPU": int(args.cpu is not None), "TARGET_CPU": args.cpu or 0,
              "USER_STACKS": int(not args.kernel_stacks_only),
              "KERNEL_STACKS": int(not args.user_stacks_only)}
    with load_tool(__name__, consts=consts) as mod:
        if not args.folded:
            whom = f"PID {args.pid}" if args.pid else \
                f"TID {args.tid}" if args.tid else "all threads"
            what = "user" if args.user_stacks_only else \
                "kernel" if args.kernel_stacks_only else "user + kernel"
            end = f" for {args.duration} secs." if args.duration else \
                "... Hit Ctrl-C to end."
            print(f"Sampling at {args.frequency} Hertz of {whom} by {what} stack{end}")
        run_tool(mod, duration=args.duration)
        report(mod, args)
    return 0


def report(mod, args) -> None:
    ksyms = KernelSymbols() if not args.user_stacks_only else None
    usyms = UserSymbols()
    stack_map = mod["stacks"]

    def frames(stack_id: int):
        if stack_id < 0:
            return None
        try:
            return [a for a in stack_map[stack_id] if a]
        except KeyError:
            return None

    merged = {}                       # the same names, sampled at different addresses
    for key, value in mod["counts"].items():
        kaddrs, uaddrs = frames(key.kstack), frames(key.ustack)
        kern = tuple(ksyms.name(a) + ("_[k]" if args.annotations else "")
                     for a in kaddrs or []) if ksyms else ()
        user = tuple(usyms.name(key.pid, a) for a in uaddrs or [])
        name = key.comm.decode("utf-8", "replace") if isinstance(key.comm, bytes) \
            else str(key.comm)
        missed = (kaddrs is None and not args.user_stacks_only and key.kstack != -EFAULT,
                  uaddrs is None and not args.kernel_stacks_only and key.ustack != -EFAULT)
        k = (key.pid, name, kern, user, missed)
        merged[k] = merged.get(k, 0) + int(value)
    for (pid_, name, kern, user, missed), count in sorted(merged.items(),
                                                          key=lambda kv: kv[1]):
        if args.folded:
            parts = [name] + list(user[::-1])
            if args.delimited and user and kern:
                parts.append("-")
            print(f"{';'.join(parts + list(kern[::-1]))} {count}")
            continue
        if missed[0]:
            print("    [Missed Kernel Stack]")
        for f in kern:
            print(f"    {f}")
        if args.delimited and kern and user:
            print("    --")
        if missed[1]:
            print("    [Missed User Stack]")
        for f in user:
            print(f"    {f}")
        print(f"    {'-':<16} {name} ({pid_})")
        print(f"        {count}\n")

if __name__ == "__main__":
    tool_main(main)
