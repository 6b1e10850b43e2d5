#!/usr/bin/env python3
"""memleak: trace a process's allocations and frees in the C library and report the
outstanding ones by user stack, like BCC's memleak (user-space mode).

Uprobes on the allocator (``malloc``, ``calloc``, ``realloc``, ``posix_memalign``,
``aligned_alloc``, ``valloc``, ``memalign``, ``pvalloc``; libc, or ``-O`` another
object) keep the requested size per thread at entry; the uretprobe adds the returned
address to a hash map with its size, the time and the user stack (a stack trace map,
``bpf_get_stackid``), and adds to a per-stack total. ``free`` (and ``realloc``'s old
pointer) removes the address and subtracts it again. Every interval user space prints
the top stacks by outstanding bytes, symbolized from ``/proc/PID/maps`` and the ELF
symbol tables (``-o`` ignores allocations younger than that). Uprobes need kernel 4.1
for BPF, ``bpf_get_stackid`` 4.6; the uprobes are attached to the one process (``-p``,
or the ``-c`` command, which the tool starts stopped and lets exec only once attached;
what it allocates before its exec does not count; when it ends, one last report shows
what it left, named from the stacks seen while it ran, and the tool ends). The
kernel-allocation mode of BCC's memleak (no ``-p``/``-c``) is not implemented.
"""

import argparse
import os
import shutil
import signal
import sys
import time

from pybpf.dsl import (
    ArrayMap, HashMap, StackTraceMap, Struct, const, i64, ktime_ns, pid, pid_tgid,
    probe_read_user, retarget, tracepoint, u32, u64, uprobe, uretprobe,
)
from pybpf.symbolize import UserSymbols, frame_names, stack_addresses
from pybpf.tooling import (
    ToolParser, add_interval_args, int_range, load_tool, pid_number, positive_int, run_tool,
    tool_main,
)


class AllocInfo(Struct):
    size: u64
    timestamp_ns: u64
    stack_id: i64


class Combined(Struct):
    total_size: u64
    number_of_allocs: u64


sizes = HashMap(u64, u64, max_entries=10240)            # thread -> size asked
memptrs = HashMap(u64, u64, max_entries=10240)          # thread -> posix_memalign's out
allocs = HashMap(u64, AllocInfo, max_entries=1000000)   # address -> allocation
combined = HashMap(u64, Combined, max_entries=10240)    # stack id -> outstanding
stack_traces = StackTraceMap(10240)
started = ArrayMap(u64, 1)                              # [0]: the -c command exec'd
MIN_SIZE = const(u64, 0)
MAX_SIZE = const(u64, 0)
SAMPLE_EVERY = const(u64, 1)
WAIT_EXEC = const(u32, 0)
TARGET_PID = const(u32, 0)


def traced() -> u32:
    if WAIT_EXEC and started[0] == 0:
        return 0                        # the -c command has not exec'd yet
    return 1


def alloc_enter(size: u64) -> u32:
    if not traced():
        return 0
    if MIN_SIZE and size < MIN_SIZE:
        return 0
    if MAX_SIZE and size > MAX_SIZE:
        return 0
    if SAMPLE_EVERY > 1 and ktime_ns() % SAMPLE_EVERY != 0:
        return 0
    sizes[pid_tgid()] = size
    return 0


def alloc_exit(address: u64) -> u32:
    s = sizes.get(pid_tgid())
    if s is None:
        return 0
    size = s[0]
    del sizes[pid_tgid()]
    if address == 0:
        return 0
    info = AllocInfo()
    info.size = size
    info.timestamp_ns = ktime_ns()
    info.stack_id = i64(stack_traces.stackid(user=True))
    allocs[address] = info
    key = u64(info.stack_id)
    c = combined.get(key)
    if c is None:
        combined[key] = Combined()
        c = combined.get(key)
        if c is None:
            return 0
    c.total_size += size
    c.number_of_allocs += 1
    return 0


def free_enter(address: u64) -> u32:
    info = allocs.get(address)
    if info is None:
        return 0
    key = u64(info.stack_id)
    c = combined.get(key)
    if c is not None:
        c.total_size -= info.size
        c.number_of_allocs -= 1
    del allocs[address]
    return 0


@uprobe("c:malloc")
def malloc_enter(ctx):
    return alloc_enter(ctx.arg0)


@uretprobe("c:malloc")
def malloc_exit(ctx):
    return alloc_exit(ctx.retval)


@uprobe("c:calloc")
def calloc_enter(ctx):
    return alloc_enter(ctx.arg0 * ctx.arg1)


@uretprobe("c:calloc")
def calloc_exit(ctx):
    return alloc_exit(ctx.retval)


@uprobe("c:realloc")
def realloc_enter(ctx):
    if traced():
        free_enter(ctx.arg0)
    return alloc_enter(ctx.arg1)


@uretprobe("c:realloc")
def realloc_exit(ctx):
    return alloc_exit(ctx.retval)


@uprobe("c:posix_memalign")
def posix_memalign_enter(ctx):
    memptrs[pid_tgid()] = ctx.arg0
    return alloc_enter(ctx.arg2)


@uretprobe("c:posix_memalign")
def posix_memalign_exit(ctx):
    p = memptrs.get(pid_tgid())
    if p is None:
        return 0
    where = p[0]
    del memptrs[pid_tgid()]
    if ctx.retval != 0:
        del sizes[pid_tgid()]
        return 0
    return alloc_exit(probe_read_user(where, u64))


@uprobe("c:aligned_alloc")
def aligned_alloc_enter(ctx):
    return alloc_enter(ctx.arg1)


@uretprobe("c:aligned_alloc")
def aligned_alloc_exit(ctx):
    return alloc_exit(ctx.retval)


@uprobe("c:valloc")
def valloc_enter(ctx):
    return alloc_enter(ctx.arg0)


@uretprobe("c:valloc")
def valloc_exit(ctx):
    return alloc_exit(ctx.retval)


@uprobe("c:memalign")
def memalign_enter(ctx):
    return alloc_enter(ctx.arg1)


@uretprobe("c:memalign")
def memalign_exit(ctx):
    return alloc_exit(ctx.retval)


@uprobe("c:pvalloc")
def pvalloc_enter(ctx):
    return alloc_enter(ctx.arg0)


@uretprobe("c:pvalloc")
def pvalloc_exit(ctx):
    return alloc_exit(ctx.retval)


@uprobe("c:free")
def free_probe(ctx):
    return free_enter(ctx.arg0)


@tracepoint("sched:sched_process_exec")
def memleak_exec(args):
    if WAIT_EXEC and pid() == TARGET_PID:
        started[0] = 1
    return 0


#: the probed functions, each with its entry and (for allocators) return program
PROBES = {"malloc": ("malloc_enter", "malloc_exit"), "calloc": ("calloc_enter", "calloc_exit"),
          "realloc": ("realloc_enter", "realloc_exit"),
          "posix_memalign": ("posix_memalign_enter", "posix_memalign_exit"),
          "aligned_alloc": ("aligned_alloc_enter", "aligned_alloc_exit"),
          "valloc": ("valloc_enter", "valloc_exit"), "memalign": ("memalign_enter",
                                                                  "memalign_exit"),
          "pvalloc": ("pvalloc_enter", "pvalloc_exit"), "free": ("free_probe", None)}


#: the largest -z/-Z size and -s period: the program compares them as u64
U64_MAX = 2**64 - 1
#: the largest -o age, in ms: ages are compared in nanoseconds (a u64)
MAX_AGE_MS = U64_MAX // 1000000


def command_line(text: str) -> str:
    """argparse type for -c: a command line (split on blanks, as BCC does) whose first
    word is a program that exists: a path to an executable file, or a name found on
    ``$PATH``."""
    words = text.split()
    if not words:
        raise argparse.ArgumentTypeError("empty command: give the program to run and "
                                         "trace, e.g. -c './allocs 10'")
    if shutil.which(words[0]) is None:
        where = "not an executable file" if "/" in words[0] else "not found in $PATH"
        raise argparse.ArgumentTypeError(f"no such command: {words[0]!r} ({where})")
    return text


def start_stopped(command: str) -> int:
    """Fork ``command`` (split on blanks, as BCC does), stopped before its exec; returns
    its pid. :func:`resume` lets it exec."""
    argv = command.split()
    if not argv:
        raise ValueError("-c: empty command")
    child = os.fork()
    if child == 0:                                   # pragma: no cover (the child)
        try:
            os.kill(os.getpid(), signal.SIGSTOP)
            os.execvp(argv[0], argv)
        except OSError as exc:
            print(f"memleak: cannot run {argv[0]}: {exc.strerror}", file=sys.stderr)
        os._exit(127)
    _, status = os.waitpid(child, os.WUNTRACED)
    if not os.WIFSTOPPED(status):
        raise OSError(f"memleak: the command {argv[0]} ended before it could be traced")
    return child


class Report:
    """BCC's interval report: the top stacks by outstanding bytes."""

    def __init__(self, mod, args, target: int) -> None:
        self.mod, self.args, self.pid = mod, args, target
        self.usyms = UserSymbols()
        self.names = {}                  # stack id -> its frames' names, once all known

    def stack(self, stack_id: int) -> list:
        """The frames of ``stack_id`` as BCC prints them (``name+0x1f [file]``). A stack
        whose frames all resolved is kept: it can still be named after the process has
        ended (the -c command's last report)."""
        if stack_id in self.names:
            return self.names[stack_id]
        addrs = stack_addresses(self.mod["stack_traces"], stack_id) or []
        frames = self.usyms.stack(self.pid, addrs)
        names = list(frame_names(frames, offsets=True, modules=True))
        if frames and all(f.known for f in frames):
            self.names[stack_id] = names
        return names

    def __call__(self) -> None:
        args = self.args
        print(f"[{time.strftime('%H:%M:%S')}] Top {args.top} stacks with outstanding "
              "allocations:")
        shown = {}
        if args.combined_only:
            for key, c in self.mod["combined"].items():
                stack_id = int(key) - (1 << 64) if int(key) >= 1 << 63 else int(key)
                if stack_id >= 0 and c.number_of_allocs:
                    shown[stack_id] = [int(c.total_size), int(c.number_of_allocs)]
        else:
            oldest = time.monotonic_ns() - args.older * 1000000
            for address, info in sorted(self.mod["allocs"].items(), key=lambda a: a[1].size):
                if info.timestamp_ns > oldest or info.stack_id < 0:
                    continue
                entry = shown.setdefault(int(info.stack_id), [0, 0])
                entry[0] += int(info.size)
                entry[1] += 1
                if args.show_allocs:
                    print(f"\taddr = {int(address):x} size = {int(info.size)}")
        for stack_id, (size, count) in sorted(shown.items(), key=lambda s: s[1][0])[-args.top:]:
            frames = self.stack(stack_id) or ["[unknown]"]
            print(f"\t{size} bytes in {count} allocations from stack\n\t\t"
                  + "\n\t\t".join(frames))


def main(argv=None) -> int:
    parser = ToolParser("memleak", "Trace outstanding memory allocations that weren't "
                        "freed.", examples=[
                            "./memleak -p $(pidof allocs)",
                            "        Trace allocations and display a summary of 'leaked' "
                            "(outstanding) allocations every 5 seconds",
                            "./memleak -p $(pidof allocs) -a",
                            "        Trace allocations and display each individual "
                            "outstanding allocation (address and size)",
                            "./memleak -p $(pidof allocs) -t  (not supported)",
                            "./memleak -c './allocs 10' 2 3",
                            "        Run ./allocs and trace it, printing every 2 "
                            "seconds, 3 times",
                            "./memleak -o 60000 -p 1234",
                            "        Show only allocations older than a minute",
                            "./memleak -s 5 -p 1234",
                            "        Sample roughly every 5th allocation (~20% overhead)",
                            "./memleak -z 16 -Z 32 -p 1234",
                            "        Only trace allocations of 16 to 32 bytes",
                        ])
    who = parser.add_mutually_exclusive_group()
    who.add_argument("-p", "--pid", type=pid_number, help="the PID to trace")
    who.add_argument("-c", "--command", type=command_line,
                     help="execute and trace the specified command")
    parser.add_argument("-a", "--show-allocs", action="store_true",
                        help="show allocation addresses and sizes as well as call stacks")
    parser.add_argument("-o", "--older", default=500,
                        type=int_range(0, MAX_AGE_MS, "an age (ms)",
                                       "compared in nanoseconds, a u64"),
                        help="prune allocations younger than this age in milliseconds")
    parser.add_argument("-s", "--sample-rate", default=1,
                        type=int_range(1, U64_MAX, "a sampling period"),
                        help="sample every N-th allocation to decrease the overhead")
    parser.add_argument("-T", "--top", type=positive_int, default=10,
                        help="display only this many top allocating stacks (by size)")
    parser.add_argument("-z", "--min-size", default=0,
                        type=int_range(0, U64_MAX, "a size (bytes)"),
                        help="capture only allocations larger than or equal to this size")
    parser.add_argument("-Z", "--max-size", default=0,
                        type=int_range(0, U64_MAX, "a size (bytes)"),
                        help="capture only allocations smaller than or equal to this size")
    parser.add_argument("-O", "--obj", default="c",
                        help="attach to allocator functions in the specified object")
    parser.add_argument("--combined-only", action="store_true",
                        help="show combined allocation statistics only (from the "
                        "in-kernel per-stack totals; -o does not apply)")
    add_interval_args(parser)
    args = parser.parse_args(argv)
    if args.pid is None and args.command is None:
        parser.error("give -p PID or -c COMMAND: tracing kernel allocations (BCC's mode "
                     "without them) is not implemented")
    if args.max_size and args.min_size > args.max_size:
        parser.error(f"argument -z/--min-size: {args.min_size} is more than -Z/--max-size "
                     f"{args.max_size}: the smallest size must be at most the largest")
    interval = args.interval or 5

    child = start_stopped(args.command) if args.command else 0
    target = child or args.pid
    try:
        from pybpf.elf.libs import UnknownLibraryError, resolve_binary
        from pybpf.elf.symbols import ElfError, ElfFile
        try:
            obj = resolve_binary(args.obj, target)
            elf = ElfFile(obj)
        except (UnknownLibraryError, ElfError) as exc:
            parser.error(f"argument -O/--obj: {exc}")
        try:
            present = {func for func in PROBES if elf.find_symbols(func)}
        finally:
            elf.close()
        wanted = []
        for func, progs in PROBES.items():
            if func not in present:
                continue                         # not in this object
            retarget(globals()[progs[0]], uprobe(f"{obj}:{func}", pid=target))
            wanted.append(progs[0])
            if progs[1]:
                retarget(globals()[progs[1]], uretprobe(f"{obj}:{func}", pid=target))
                wanted.append(progs[1])
        wanted.append("memleak_exec")
        consts = {"MIN_SIZE": args.min_size, "MAX_SIZE": args.max_size,
                  "SAMPLE_EVERY": args.sample_rate, "WAIT_EXEC": bool(child),
                  "TARGET_PID": target}
        with load_tool(__name__, consts=consts, programs=wanted) as mod:
            if child:
                print(f"Executing '{args.command}' and tracing the resulting process.")
                os.kill(child, signal.SIGCONT)
            else:
                print(f"Attaching to pid {target}, Ctrl+C to quit.")
            report = Report(mod, args, target)
            ended = []
            run_tool(mod, interval=interval, count=args.count, on_interval=report,
                     until=(lambda: child_gone(child, ended)) if child else None)
            if ended:
                report()                     # what the command left at its exit
    finally:
        if child:
            reap(child)
    return 0


def child_gone(child: int, ended: list) -> bool:
    """Whether the -c command has ended (then the run ends with a last report, as
    there is nothing left to trace); ``ended`` gets True appended when it has."""
    try:
        done, _ = os.waitpid(child, os.WNOHANG)
    except ChildProcessError:
        done = child
    if done == child:
        ended.append(True)
    return done == child


def reap(child: int) -> None:
    """End the -c command if it still runs (it was started for the trace) and reap it."""
    try:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
    except (ProcessLookupError, ChildProcessError):
        pass


if __name__ == "__main__":
    tool_main(main)
