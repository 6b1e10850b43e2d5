#!/usr/bin/env python3
"""stackcount: count the stack traces that lead to the functions, tracepoints or USDT
probes a pattern names, like BCC's stackcount.

The pattern expands as funccount's does (``_probespec``). Every attach point runs the
same few instructions, built with the asm builder (``_probeset.stack_program``): the
user and kernel stacks go to a stack trace map (``bpf_get_stackid``), and the key
(process, user stack id, kernel stack id, comm) is counted in a hash map. The process
is always recorded, so user stacks are symbolized (``pybpf.symbolize``) even without
-P; without -P the stacks of different processes are then added up by their names, as
BCC shows them.
"""

import ctypes
import time

from pybpf.maps.spec import MapSpec
from pybpf.symbolize import (
    UserSymbols, folded, frame_names, kernel_symbols, stack_addresses,
)
from pybpf.syscall.bpf import MapType
from pybpf.tooling import (
    ToolParser, cpu_number, line_buffered, pid_number, run_tool, tool_main, whole_seconds,
)

if __package__:     # python3 -m programs.NAME: the helpers are its siblings
    from ._probeset import STACK_KEY_SIZE, ProbeSet, stack_program
    from ._probespec import expand, parse_pattern
else:               # programs/NAME.py, pybpf run NAME (programs/ on the path)
    from _probeset import STACK_KEY_SIZE, ProbeSet, stack_program
    from _probespec import expand, parse_pattern


class Key(ctypes.Structure):
    """The hash map's key, as ``_probeset.stack_program`` writes it."""
    _fields_ = [("tgid", ctypes.c_uint32), ("ustack", ctypes.c_int32),
                ("kstack", ctypes.c_int32), ("comm", ctypes.c_char * 16)]


assert ctypes.sizeof(Key) == STACK_KEY_SIZE


def _frames(addrs, names, verbose):
    return [f"{a:<16x} {n}" if verbose else n for a, n in zip(addrs, names)]


def report(probes: ProbeSet, args, ksyms, usyms: UserSymbols) -> None:
    """Print every counted stack (least first), then empty the counts."""
    counts, stacks = probes["counts"], probes["stacks"]
    per_pid = args.perpid or bool(args.pid)
    merged = {}
    keys = []
    for key, value in counts.items():
        keys.append(key)
        kaddrs = stack_addresses(stacks, key.kstack) or []
        uaddrs = stack_addresses(stacks, key.ustack) or []
        kern = _frames(kaddrs, frame_names(ksyms.stack(kaddrs), offsets=args.offset),
                       args.verbose) if ksyms else []
        user = _frames(uaddrs, frame_names(usyms.stack(key.tgid, uaddrs),
                                           offsets=args.offset), args.verbose)
        who = (key.tgid, key.comm.decode("utf-8", "replace")) if per_pid else None
        k = (who, tuple(kern), tuple(user))
        merged[k] = merged.get(k, 0) + int(value)
    if not args.folded:
        print()
    if args.timestamp:
        print(f"{time.strftime('%H:%M:%S'):<8}")
    delimit = args.delimited and not (args.kernel_stacks_only or args.user_stacks_only)
    for (who, kern, user), count in sorted(merged.items(), key=lambda kv: kv[1]):
        if args.folded:
            print(folded(who[1] if who else "", user, kern, count, delimiter=delimit))
            continue
        lines = [f"  {f}" for f in kern]
        if delimit:
            lines.append("    --")
        lines += [f"  {f}" for f in user]
        if who and not args.pid:
            lines.append(f"    {who[1]} [{who[0]}]")
        print("\n".join(lines + [f"    {count}\n"]))
    for key in keys:
        try:
            del counts[key]
        except KeyError:
            pass
    for stack_id in {i for k in keys for i in (k.kstack, k.ustack) if i >= 0}:
        try:
            del stacks[stack_id]
        except KeyError:
            pass


def main(argv=None) -> int:
    parser = ToolParser("stackcount", "Count events and their stack traces", examples=[
        "./stackcount submit_bio         # count kernel stack traces for submit_bio",
        "./stackcount -d ip_output       # include a user/kernel stack delimiter",
        "./stackcount -s ip_output       # show symbol offsets",
        "./stackcount -sv ip_output      # show offsets and raw addresses (verbose)",
        "./stackcount 'tcp_send*'        # count stacks for funcs matching tcp_send*",
        "./stackcount -r '^tcp_send.*'   # same as above, using regular expressions",
        "./stackcount -Ti 5 ip_output    # output every 5 seconds, with timestamps",
        "./stackcount -p 185 ip_output   # count ip_output stacks for PID 185 only",
        "./stackcount -c 1 put_prev_entity   # count put_prev_entity stacks for CPU 1 "
        "only",
        "./stackcount -p 185 c:malloc    # count stacks for malloc in PID 185",
        "./stackcount t:sched:sched_fork # count stacks for sched_fork tracepoint",
        "./stackcount -p 185 u:node:*    # count stacks for all USDT probes in node",
        "./stackcount -K t:sched:sched_switch   # kernel stacks only",
        "./stackcount -U t:sched:sched_switch   # user stacks only",
    ])
    parser.add_argument("-p", "--pid", type=pid_number, default=0,
                        help="trace this PID only")
    parser.add_argument("-c", "--cpu", type=cpu_number, help="trace this CPU only")
    parser.add_argument("-i", "--interval", type=whole_seconds,
                        help="summary interval, seconds")
    parser.add_argument("-D", "--duration", type=whole_seconds,
                        help="total duration of trace, seconds")
    parser.add_argument("-T", "--timestamp", action="store_true",
                        help="include timestamp on output")
    parser.add_argument("-r", "--regexp", action="store_true",
                        help="use regular expressions. Default is \"*\" wildcards only.")
    parser.add_argument("-s", "--offset", action="store_true",
                        help="show address offsets")
    parser.add_argument("-P", "--perpid", action="store_true",
                        help="display stacks separately for each process")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("-K", "--kernel-stacks-only", action="store_true",
                       help="kernel stack only")
    which.add_argument("-U", "--user-stacks-only", action="store_true",
                       help="user stack only")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="show raw addresses")
    parser.add_argument("-d", "--delimited", action="store_true",
                        help="insert delimiter between kernel/user stacks")
    parser.add_argument("-f", "--folded", action="store_true",
                        help="output folded format")
    parser.add_argument("pattern", help="search expression for events")
    args = parser.parse_args(argv)

    pattern = parse_pattern(args.pattern, args.regexp)
    targets = expand(pattern, args.pid or None)
    line_buffered()
    maps = {"counts": MapSpec(MapType.HASH, Key, ctypes.c_uint64, 10240, name="counts"),
            "stacks": MapSpec(MapType.STACK_TRACE, ctypes.c_uint32, ctypes.c_uint64 * 127,
                              1024, name="stacks")}
    program = stack_program(args.pid, args.cpu, user=not args.kernel_stacks_only,
                            kernel=not args.user_stacks_only, per_pid=True)
    ksyms = kernel_symbols() if not args.user_stacks_only else None
    usyms = UserSymbols()
    if args.interval and args.duration:
        timing = {"interval": args.interval, "count": max(1, args.duration // args.interval)}
    else:
        timing = {"interval": args.interval, "duration": args.duration}
    header = None if args.folded else \
        f'Tracing {len(targets)} functions for "{args.pattern}"... Hit Ctrl-C to end.'
    with ProbeSet.load("stackcount", targets, maps, lambda i: program, args.pid) as probes:
        run_tool(probes, **timing, header=header,
                 summary=lambda: report(probes, args, ksyms, usyms))
        if not args.folded:
            print("Detaching...")
    return 0


if __name__ == "__main__":
    tool_main(main)
