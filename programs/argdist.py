#!/usr/bin/env python3
"""argdist: the distribution of a function's argument or return values, as a log2
histogram (-H) or a count per value (-C), like BCC's argdist.

Each specifier (``_tracespec.parse_argdist``: ``'p:c:malloc(size_t size):size_t:size'``,
``'r:c:malloc():u64:retval'``, ``'t:syscalls:sys_enter_read():u64:args->count'``, with an
optional ``:FILTER`` and ``#label``) becomes one function of a generated pybpf.dsl
module (``_probegen``): the filters, then ``hist[log2(value)] += 1`` or
``counts[Key(v0, v1, ...)] += 1``. Every interval (-i, one second) the tables are
printed, as BCC does, and cleared unless -c.
"""

import time

from pybpf.events.histogram import Log2Histogram
from pybpf.tooling import (
    ToolParser, line_buffered, pid_number, positive_int, run_tool, tid_number, tool_main,
    whole_seconds,
)

if __package__:     # python3 -m programs.NAME: the helpers are its siblings
    from ._probegen import check_fields, compile_probes, decorator
    from ._tracespec import parse_argdist, python_expr
else:               # programs/NAME.py, pybpf run NAME (programs/ on the path)
    from _probegen import check_fields, compile_probes, decorator
    from _tracespec import parse_argdist, python_expr


def generate(specs, args) -> str:
    """The pybpf.dsl module text for the parsed specifiers."""
    out = ["from pybpf.dsl import *", "",
           "TARGET_PID = const(u32, 0)", "TARGET_TID = const(u32, 0)"]
    for i, (hist, spec) in enumerate(specs):
        probe = spec.probe
        check_fields(probe)
        out.append("")
        if hist:
            out.append(f"hist{i} = Histogram()")
        else:
            out.append(f"class Key{i}(Struct):")
            out += [f"    v{j}: u64" for j in range(len(probe.values))]
            out.append(f"counts{i} = HashMap(Key{i}, u64, max_entries={args.max_entries})")
        out += ["", decorator(probe, args.pid), f"def probe{i}(ctx):",
                "    if TARGET_PID and pid() != TARGET_PID:", "        return 0",
                "    if TARGET_TID and tid() != TARGET_TID:", "        return 0"]
        if probe.filter is not None:
            out += [f"    if not {python_expr(probe.filter, probe)}:", "        return 0"]
        values = [python_expr(v, probe) for v in probe.values]
        masks = [(1 << bits) - 1 for bits, _ in spec.types]
        if hist:
            out.append(f"    hist{i}[log2(u64({values[0]}) & {masks[0]:#x})] += 1")
        else:
            out.append(f"    k = Key{i}()")
            out += [f"    k.v{j} = u64({v}) & {m:#x}" for j, (v, m) in
                    enumerate(zip(values, masks))]
            out.append(f"    counts{i}[k] += 1")
        out.append("    return 0")
    return "\n".join(out) + "\n"


def _value(raw: int, bits: int, signed: bool) -> int:
    return raw - (1 << bits) if signed and raw >> (bits - 1) else raw


def show(mod, specs, args) -> None:
    """Print every specifier's table (BCC's layout), then clear it unless -c."""
    print(f"[{time.strftime('%H:%M:%S')}]")
    for i, (hist, spec) in enumerate(specs):
        title = spec.label or spec.probe.text
        if hist:
            table = mod[f"hist{i}"]
            label = spec.label or (spec.exprs[0] if not spec.default else "retval")
            print(f"{title}")
            print(Log2Histogram(table).bcc(label), end="")
            if not args.cumulative:
                for slot in range(64):
                    table[slot] = 0
            continue
        table = mod[f"counts{i}"]
        print(title)
        print(f"\t{'COUNT':<10} EVENT")
        rows = sorted(table.items(), key=lambda kv: int(kv[1]))
        if args.top:
            rows = rows[-args.top:]
        for key, count in rows:
            vals = [_value(getattr(key, f"v{j}"), *spec.types[j])
                    for j in range(len(spec.exprs))]
            if spec.default:
                event = "total calls" if spec.probe.kind != "r" else f"retval = {vals[0]}"
            else:
                event = ", ".join(f"{e} = {v}" for e, v in zip(spec.exprs, vals))
            print(f"\t{int(count):<10} {event}")
        if not args.cumulative:
            for key, _ in list(table.items()):
                try:
                    del table[key]
                except KeyError:
                    pass


def main(argv=None) -> int:
    parser = ToolParser("argdist", "Trace a function and display a distribution of its "
                        "parameter values as a histogram or frequency count", examples=[
                            "argdist -H 'p:c:malloc(size_t size):size_t:size'",
                            "        Print a histogram of allocation sizes passed to malloc",
                            "argdist -C 'p:c:malloc(size_t size):size_t:size:size==16'",
                            "        Print a frequency count of how many times 16-byte "
                            "allocations were requested",
                            "argdist -C 'r:c:malloc()'",
                            "        Count malloc's return values (and so its failures)",
                            "argdist -H 't:syscalls:sys_enter_read():u64:args->count'",
                            "        Print a histogram of read sizes",
                            "argdist -C 'p:c:write(int fd):int:fd' -T 5",
                            "        The 5 file descriptors written most",
                        ])
    parser.add_argument("-p", "--pid", type=pid_number, default=0,
                        help="id of the process to trace (optional)")
    parser.add_argument("-t", "--tid", type=tid_number, default=0,
                        help="id of the thread to trace (optional)")
    parser.add_argument("-i", "--interval", type=whole_seconds, default=1,
                        help="output interval, in seconds (default 1 second)")
    parser.add_argument("-d", "--duration", type=whole_seconds,
                        help="total duration of trace, in seconds")
    parser.add_argument("-n", "--number", type=positive_int, dest="count",
                        help="number of outputs")
    parser.add_argument("-c", "--cumulative", action="store_true",
                        help="do not clear histograms and freq counts at each interval")
    parser.add_argument("-T", "--top", type=positive_int,
                        help="number of top results to show (not applicable to histograms)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="print the generated pybpf.dsl program before running")
    parser.add_argument("-H", "--histogram", action="append", dest="histspecifier",
                        metavar="specifier", default=[],
                        help="probe specifier to capture histogram of (see examples)")
    parser.add_argument("-C", "--count", action="append", dest="countspecifier",
                        metavar="specifier", default=[],
                        help="probe specifier to capture count of (see examples)")
    args = parser.parse_args(argv)
    if not args.histspecifier and not args.countspecifier:
        parser.error("at least one specifier is required (-H or -C)")
    args.max_entries = 10240
    specs = [(True, parse_argdist(s, True)) for s in args.histspecifier] + \
        [(False, parse_argdist(s, False)) for s in args.countspecifier]
    source = generate(specs, args)
    if args.verbose:
        print(source)
    module = compile_probes(source)
    line_buffered()
    timing = {"interval": args.interval}
    if args.count:
        timing["count"] = args.count
    if args.duration:
        timing["duration"] = args.duration
    with module.load(consts={"TARGET_PID": args.pid, "TARGET_TID": args.tid}) as mod:
        run_tool(mod, **timing, summary=lambda: show(mod, specs, args))
    return 0


if __name__ == "__main__":
    tool_main(main)

