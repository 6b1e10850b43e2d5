#!/usr/bin/env python3
"""trace: print a line for each event of one or more probes, with a format string and a
filter, like BCC's trace.

Each probe (``_tracespec``: ``'t:syscalls:sys_enter_openat "%s", args->filename'``,
``'p:c:malloc (arg1 > 4096) "%d", arg1'``, ``'r:c:malloc (retval == 0)'``) becomes one
function of a generated pybpf.dsl module: the filters (-p/-t as load-time constants,
the probe's own as a Python expression), then an event with the process, the time, the
stack ids (-K/-U) and one field per value (an integer, or a string read with
``probe_read_user_str``) sent through the probe's own ring buffer. User space formats
the values with the probe's format string, as BCC does, and prints
``PID TID COMM FUNC -`` columns.
"""

import argparse
import time

from pybpf.symbolize import UserSymbols, frame_names, kernel_symbols, stack_addresses
from pybpf.tooling import (
    ToolParser, int_range, line_buffered, pid_number, positive_int, run_tool, tid_number,
    tool_main,
)

if __package__:     # python3 -m programs.NAME: the helpers are its siblings
    from ._probegen import check_fields, compile_probes, decorator, string_reader
    from ._probespec import ProbeSpecError
    from ._tracespec import _CONV, TraceProbe, parse_probe, python_expr
else:               # programs/NAME.py, pybpf run NAME (programs/ on the path)
    from _probegen import check_fields, compile_probes, decorator, string_reader
    from _probespec import ProbeSpecError
    from _tracespec import _CONV, TraceProbe, parse_probe, python_expr

STACKS = 1024
#: the most pages of one ring buffer: its size in bytes is a power of two that fits the
#: map's u32 max_entries (2**31)
MAX_PAGES = 2**31 // 4096
#: the longest string a record can hold: the record is built on the BPF stack (512
#: bytes), which its other fields and the program's own values share
MAX_STRING = 464


def buffer_pages(text: str) -> int:
    """argparse type for -b: a power of two, 1..:data:`MAX_PAGES`."""
    value = int_range(1, MAX_PAGES, "the pages (a power of two)")(text)
    if value & (value - 1):
        raise argparse.ArgumentTypeError(
            f"{text} is not a power of two: the pages must be a power of two 1..{MAX_PAGES}")
    return value


def generate(probes, args) -> str:
    """The pybpf.dsl module text for ``probes``."""
    out = ["from pybpf.dsl import *", "",
           "TARGET_PID = const(u32, 0)", "TARGET_TID = const(u32, 0)"]
    if args.kernel_stack or args.user_stack:
        out.append(f"stacks = StackTraceMap({STACKS})")
    for i, probe in enumerate(probes):
        check_fields(probe)
        out += ["", f"class Event{i}(Struct):", "    ts: u64", "    tgid: u32", "    tid: u32",
                "    kstack: i32", "    ustack: i32", "    comm: char[16]"]
        for j, conv in enumerate(probe.conversions):
            out.append(f"    v{j}: " + (f"char[{args.string_size}]" if conv.kind == "s"
                                        else "u64"))
        out += [f"events{i} = RingBuf(Event{i}, size={args.buffer_pages * 4096})", "",
                decorator(probe, args.pid), f"def probe{i}(ctx):",
                "    if TARGET_PID and pid() != TARGET_PID:", "        return 0",
                "    if TARGET_TID and tid() != TARGET_TID:", "        return 0"]
        if probe.filter is not None:
            out += [f"    if not {python_expr(probe.filter, probe)}:", "        return 0"]
        out += [f"    e = Event{i}()", "    e.ts = ktime_ns()", "    e.tgid = pid()",
                "    e.tid = tid()", "    e.comm = comm()", "    e.kstack = -1",
                "    e.ustack = -1"]
        if args.kernel_stack:
            out.append("    e.kstack = i32(stacks.stackid())")
        if args.user_stack:
            out.append("    e.ustack = i32(stacks.stackid(user=True))")
        for j, (conv, node) in enumerate(zip(probe.conversions, probe.values)):
            expr = python_expr(node, probe)
            if conv.kind == "s":
                if node.kind not in ("arg", "field", "retval"):
                    raise ProbeSpecError(probe.text, node.column, "%s takes an argument, "
                                         "retval or args->FIELD (a pointer)")
                ptr = expr[4:-1]                   # the value without its i64( )
                out.append(f"    e.v{j} = {string_reader(probe, node)}({ptr})")
            else:
                out.append(f"    e.v{j} = u64({expr})")
        out += [f"    events{i}.output(e)", "    return 0"]
    return "\n".join(out) + "\n"


class Printer:
    """Formats and prints the events of every probe; counts them for -M."""

    def __init__(self, probes, args) -> None:
        self.probes, self.args = probes, args
        self.count = 0
        self.first_ts = time.clock_gettime_ns(time.CLOCK_MONOTONIC)   # ktime_ns's clock
        self.pending = []
        self.ksyms = kernel_symbols() if (args.kernel_stack or any(
            c.kind == "K" for p in probes for c in p.conversions)) else None
        self.usyms = UserSymbols()
        self.stacks = None

    def header(self) -> str:
        trivial = all(not p.format for p in self.probes)
        time_col = "TIME     " if (self.args.timestamp or self.args.time) else ""
        return f"{time_col}{'PID':<7} {'TID':<7} {'COMM':<15} {'FUNC':<16} " + \
            ("" if trivial else "-")

    def value(self, conv, raw, tgid: int):
        if conv.kind == "s":
            if isinstance(raw, str):
                return raw.split("\0", 1)[0]
            return bytes(raw).split(b"\0", 1)[0].decode("utf-8", "replace")
        if conv.kind == "c":
            return chr(raw & 0xFF)
        if conv.kind == "K":
            return frame_names(self.ksyms.stack([raw]), offsets=True)[0]
        if conv.kind == "U":
            return frame_names(self.usyms.stack(tgid, [raw]), offsets=True,
                               modules=True)[0]
        raw &= (1 << conv.bits) - 1
        if conv.kind == "d" and raw >> (conv.bits - 1):
            raw -= 1 << conv.bits
        return raw

    def message(self, probe: TraceProbe, e) -> str:
        values = [self.value(c, getattr(e, f"v{j}"), e.tgid)
                  for j, c in enumerate(probe.conversions)]
        text, it = [], iter(zip(probe.conversions, values))
        pos, fmt = 0, probe.format
        while True:
            at = fmt.find("%", pos)
            if at < 0:
                text.append(fmt[pos:])
                break
            text.append(fmt[pos:at])
            if fmt.startswith("%%", at):
                text.append("%")
                pos = at + 2
                continue
            m = _CONV.match(fmt, at)
            conv, value = next(it)
            text.append(conv.python % value)
            pos = m.end()
        return "".join(text)

    def on_event(self, index: int, e) -> None:
        """Keep the event until :meth:`flush` (each probe has its own ring)."""
        self.pending.append((e.ts, index, e))

    def flush(self) -> bool:
        """Print the events kept, in time order across the probes' rings; True once -M
        events were printed."""
        pending, self.pending = sorted(self.pending, key=lambda p: (p[0], p[1])), []
        for _, index, e in pending:
            if self.args.max_events and self.count >= self.args.max_events:
                break
            self.show(index, e)
        return bool(self.args.max_events) and self.count >= self.args.max_events

    def show(self, index: int, e) -> None:
        """Print one event (and its stacks)."""
        probe = self.probes[index]
        line = ""
        if self.args.time:
            line += f"{time.strftime('%H:%M:%S'):<8} "
        elif self.args.timestamp:
            line += f"{f'{(e.ts - self.first_ts) / 1e9:.6f}'[:8]:<8} "
        comm = e.comm.decode("utf-8", "replace") if isinstance(e.comm, bytes) else str(e.comm)
        line += f"{e.tgid:<7} {e.tid:<7} {comm:<15} {probe.display:<16} " \
            f"{self.message(probe, e)}"
        lines = [line]
        if self.args.kernel_stack:
            lines += self.stack(e.kstack, None)
        if self.args.user_stack:
            lines += self.stack(e.ustack, e.tgid)
        if self.args.kernel_stack or self.args.user_stack:
            lines.append("")
        print("\n".join(lines))
        self.count += 1

    def stack(self, stack_id: int, tgid):
        addrs = stack_addresses(self.stacks, stack_id)
        if addrs is None:
            return [f"        {stack_id}"]
        frames = self.ksyms.stack(addrs) if tgid is None else self.usyms.stack(tgid, addrs)
        names = frame_names(frames, offsets=True, modules=True)
        return [f"        {a:16x} {n}" if self.args.address else f"        {n}"
                for a, n in zip(addrs, names)]


def main(argv=None) -> int:
    parser = ToolParser("trace", "Attach to functions and print trace messages.", examples=[
        "trace do_sys_open",
        "        Trace the open syscall and print a default trace message when entered",
        "trace 'do_sys_open \"%s\", arg2@user'",
        "        Trace the open syscall and print the filename being opened",
        "trace 'sys_read (arg3 > 20000) \"read %d bytes\", arg3'",
        "        Trace the read syscall and print a message for reads >20000 bytes",
        "trace 'r::do_sys_open \"%llx\", retval'",
        "        Trace the return from the open syscall and print the return value",
        "trace 'c:malloc \"size = %d\", arg1'",
        "        Trace malloc calls and print the size being allocated",
        "trace 'r:c:malloc (retval == 0)'",
        "        Trace returns from malloc that failed",
        "trace 't:syscalls:sys_enter_openat \"%s\", args->filename'",
        "        Trace the openat tracepoint and print the file name",
        "trace -U 'p:c:malloc (arg1 > 4096) \"%d\", arg1'",
        "        Large mallocs, with the user stack",
    ])
    who = parser.add_mutually_exclusive_group()
    who.add_argument("-p", "--pid", type=pid_number, default=0, metavar="PID",
                     help="id of the process to trace (optional)")
    who.add_argument("-L", "--tid", type=tid_number, default=0, metavar="TID",
                     help="id of the thread to trace (optional)")
    parser.add_argument("-b", "--buffer-pages", type=buffer_pages, default=64,
                        help="number of pages of each probe's ring buffer (a power of two)")
    parser.add_argument("-Z", "--string-size", default=80,
                        type=int_range(1, MAX_STRING, "a string size (bytes)",
                                       "a record is built on the 512-byte BPF stack"),
                        help="maximum size to read from strings")
    parser.add_argument("-M", "--max-events", type=positive_int,
                        help="number of events to print before quitting")
    parser.add_argument("-t", "--timestamp", action="store_true",
                        help="print timestamp column (offset from trace start)")
    parser.add_argument("-T", "--time", action="store_true", help="print time column")
    parser.add_argument("-K", "--kernel-stack", action="store_true",
                        help="output kernel stack trace")
    parser.add_argument("-U", "--user-stack", action="store_true",
                        help="output user stack trace")
    parser.add_argument("-a", "--address", action="store_true",
                        help="print virtual address in stacks")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the generated pybpf.dsl program before running")
    parser.add_argument("probes", nargs="+", metavar="probe",
                        help="probe specifier (see examples)")
    args = parser.parse_args(argv)

    probes = [parse_probe(text) for text in args.probes]
    source = generate(probes, args)
    if args.verbose:
        print(source)
    spec = compile_probes(source)
    line_buffered()
    printer = Printer(probes, args)
    with spec.load(consts={"TARGET_PID": args.pid, "TARGET_TID": args.tid}) as mod:
        printer.stacks = mod.maps.get("stacks")
        for i in range(len(probes)):
            mod.on(f"events{i}", lambda e, i=i: printer.on_event(i, e))
        run_tool(mod, until=printer.flush, header=printer.header())
        printer.flush()                           # the records of the last poll
    return 0


if __name__ == "__main__":
    tool_main(main)
