#!/usr/bin/env python3
"""funccount: count calls of the functions, tracepoints or USDT probes a pattern names,
like BCC's funccount.

The pattern (``c:malloc``, ``t:sched:sched_*``, ``/path/bin:read*``, ``u:lib:probe``,
``vfs_*`` for kernel functions where kprobes exist; see ``_probespec``) expands into
attach points. Each gets its own few-instruction program, built with the asm builder
(``_probeset.count_program``): ``counts[i] += 1`` in an array map, ``i`` being the
point's index, after the optional PID and CPU filters. Every interval (or at the end)
the non-zero counts are printed, least first, and reset.
"""

import ctypes
import time

from pybpf.maps.spec import MapSpec
from pybpf.syscall.bpf import MapType
from pybpf.tooling import (
    ToolParser, cpu_number, line_buffered, pid_number, run_tool, tool_main, whole_seconds,
)

if __package__:     # python3 -m programs.NAME: the helpers are its siblings
    from ._probeset import ProbeSet, count_program
    from ._probespec import expand, parse_pattern
else:               # programs/NAME.py, pybpf run NAME (programs/ on the path)
    from _probeset import ProbeSet, count_program
    from _probespec import expand, parse_pattern


def report(probes: ProbeSet, timestamp: bool) -> None:
    """Print the FUNC COUNT table of the non-zero counts (ascending), then zero them."""
    counts = probes["counts"]
    print()
    if timestamp:
        print(f"{time.strftime('%H:%M:%S'):<8}")
    print(f"{'FUNC':<36} {'COUNT':>8}")
    values = [(int(counts[i]), t.name) for i, t in enumerate(probes.targets)]
    for value, name in sorted((v for v in values if v[0]), key=lambda v: v[0]):
        print(f"{name:<36} {value:>8}")
    for i, (value, _) in enumerate(values):
        if value:
            counts[i] = 0


def main(argv=None) -> int:
    parser = ToolParser("funccount", "Count functions, tracepoints, and USDT probes",
                        examples=[
                            "./funccount 'vfs_*'             # count kernel fns starting "
                            "with \"vfs\"",
                            "./funccount -r '^vfs.*'         # same as above, using regular "
                            "expressions",
                            "./funccount -Ti 5 'vfs_*'       # output every 5 seconds, with "
                            "timestamps",
                            "./funccount -d 10 'vfs_*'       # trace for 10 seconds only",
                            "./funccount -p 185 'vfs_*'      # count vfs calls for PID 185 "
                            "only",
                            "./funccount t:sched:sched_fork  # count calls to the sched_fork "
                            "tracepoint",
                            "./funccount -p 185 u:node:gc*   # count all GC USDT probes in "
                            "node, PID 185",
                            "./funccount c:malloc            # count all malloc() calls in "
                            "libc",
                            "./funccount ./test:read*        # count \"read*\" calls in the "
                            "./test binary",
                            "./funccount -c 1 'vfs_*'        # count vfs calls on CPU 1 only",
                        ])
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    parser.add_argument("-i", "--interval", type=whole_seconds,
                        help="summary interval, seconds")
    parser.add_argument("-d", "--duration", type=whole_seconds,
                        help="total duration of trace, seconds")
    parser.add_argument("-T", "--timestamp", action="store_true",
                        help="include timestamp on output")
    parser.add_argument("-r", "--regexp", action="store_true",
                        help='use regular expressions. Default is "*" wildcards only.')
    parser.add_argument("-c", "--cpu", type=cpu_number, help="trace this CPU only")
    parser.add_argument("pattern", help="search expression for events")
    args = parser.parse_args(argv)

    pattern = parse_pattern(args.pattern, args.regexp)
    targets = expand(pattern, args.pid or None)
    line_buffered()
    counts = MapSpec(MapType.ARRAY, ctypes.c_uint32, ctypes.c_uint64, len(targets),
                     name="counts")
    if args.interval and args.duration:          # BCC: every interval until the duration
        timing = {"interval": args.interval, "count": max(1, args.duration // args.interval)}
    else:
        timing = {"interval": args.interval, "duration": args.duration}
    with ProbeSet.load("funccount", targets, {"counts": counts},
                       lambda i: count_program(i, args.pid, args.cpu), args.pid) as probes:
        run_tool(probes, **timing,
                 header=f'Tracing {len(targets)} functions for "{args.pattern}"... '
                        'Hit Ctrl-C to end.',
                 summary=lambda: report(probes, args.timestamp))
        print("Detaching...")
    return 0


if __name__ == "__main__":
    tool_main(main)
