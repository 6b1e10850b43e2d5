#!/usr/bin/env python3
"""tcpconnlat: trace TCP active connections with their connect latency, like BCC's
tcpconnlat.

BCC times a connect from the entry of ``tcp_v4_connect``/``tcp_v6_connect`` (kprobes)
to the SYN-ACK's arrival in ``tcp_rcv_state_process`` (a kprobe); libbpf-tools uses
fentry on the same functions. Neither is open on every host (kprobes are missing, and
fentry refused, on this project's test host), so this tool uses the
``sock:inet_sock_set_state`` tracepoint only (Linux 4.16 and later): the change to
SYN_SENT, made inside connect() by the connecting task (its pid and comm are kept with
the time, in a hash map keyed by the socket address), starts the clock; the change
SYN_SENT -> ESTABLISHED, made when the SYN-ACK is processed, stops it and prints the
line. A connect that fails (SYN_SENT -> CLOSE) is forgotten. The interval is BCC's but
for the route look-up and port choice made before SYN_SENT (microseconds). Where the
tracepoint is missing the tool stops at load with an error naming it.

``duration_ms`` (BCC's positional minimum, fractions allowed) and -p filter in the
kernel; -4/-6 choose the family.
"""

import argparse
import json

from pybpf.dsl import (
    HashMap, PerfEventArray, Struct, char, comm, const, ktime_ns, pid, tracepoint, u8, u16,
    u32, u64,
)
from pybpf.tooling import (
    ToolParser, ip_address, load_tool, pid_number, run_tool, text_of, tool_main,
    write_lines,
)

AF_INET, AF_INET6, IPPROTO_TCP = 2, 10, 6
TCP_ESTABLISHED, TCP_SYN_SENT = 1, 2


class Start(Struct):
    ts_ns: u64
    pid: u32
    comm: char[16]


class Connect(Struct):
    ts_ns: u64
    delta_ns: u64
    pid: u32
    family: u16
    lport: u16
    dport: u16
    saddr: u8[16]
    daddr: u8[16]
    comm: char[16]


events = PerfEventArray(Connect)
starts = HashMap(u64, Start, max_entries=10240)     # socket address -> connect start
TARGET_PID = const(u32, 0)
MIN_NS = const(u64, 0)
FAMILY = const(u16, 0)


@tracepoint("sock:inet_sock_set_state")
def tcp_connect_state(args):
    if args.protocol != IPPROTO_TCP:
        return 0
    if FAMILY and args.family != FAMILY:
        return 0
    sk = args.skaddr
    if args.newstate == TCP_SYN_SENT:
        if TARGET_PID and pid() != TARGET_PID:
            return 0
        s = Start()
        s.ts_ns = ktime_ns()
        s.pid = pid()
        s.comm = comm()
        starts[sk] = s
        return 0
    if args.oldstate != TCP_SYN_SENT:
        return 0
    began = starts.get(sk)
    if began is None:
        return 0                    # began before the tool, or filtered out
    now = ktime_ns()
    delta = now - began.ts_ns
    e = Connect()
    e.pid = began.pid
    e.comm = began.comm
    del starts[sk]
    if args.newstate != TCP_ESTABLISHED:
        return 0                    # refused or timed out: no connection
    if delta < MIN_NS:
        return 0
    e.ts_ns = now
    e.delta_ns = delta
    e.family = args.family
    e.lport = args.sport
    e.dport = args.dport
    if args.family == AF_INET:
        for i in range(4):
            e.saddr[i] = args.saddr[i]
            e.daddr[i] = args.daddr[i]
    else:
        e.saddr = args.saddr_v6
        e.daddr = args.daddr_v6
    events.output(e)
    return 0


def column_header(args) -> str:
    """The header line, as BCC prints it for these options."""
    lead = f"{'TIME(s)':<9}" if args.timestamp else ""
    if args.lport:
        return lead + (f"{'PID':<7} {'COMM':<12} {'IP':<2} {'SADDR':<16} {'LPORT':<6} "
                       f"{'DADDR':<16} {'DPORT':<5} LAT(ms)")
    return lead + (f"{'PID':<7} {'COMM':<12} {'IP':<2} {'SADDR':<16} {'DADDR':<16} "
                   f"{'DPORT':<5} LAT(ms)")


def batch_printer(args):
    """The callback of ``mod.on("events", ..., rows=True)``: one line (or JSON object)
    per connection; -t counts from the first one shown, as BCC does."""
    first = []

    def show(rows) -> None:
        if rows and not first:
            first.append(rows[0][0])
        lines = []
        for ts, delta, pid, family, lport, dport, saddr, daddr, comm in rows:
            src, dst = ip_address(family, saddr), ip_address(family, daddr)
            ip = 4 if family == AF_INET else 6
            ms = delta / 1e6
            if args.json:
                obj = {"time(s)": round((ts - first[0]) / 1e9, 3)} if args.timestamp else {}
                obj.update(pid=pid, comm=text_of(comm), ip=ip, saddr=src)
                if args.lport:
                    obj["lport"] = lport
                obj.update({"daddr": dst, "dport": dport, "lat(ms)": round(ms, 3)})
                lines.append(json.dumps(obj))
                continue
            lead = f"{(ts - first[0]) / 1e9:<9.3f}" if args.timestamp else ""
            mid = f"{src:<16} {lport:<6} " if args.lport else f"{src:<16} "
            lines.append(f"{lead}{pid:<7} {text_of(comm):<12.12} {ip:<2} {mid}{dst:<16} "
                         f"{dport:<5} {ms:.2f}")
        write_lines(lines)

    return show


#: the largest minimum latency, in ms: the program compares nanoseconds in a u64
MAX_MS = (2**64 - 1) // 1000000


def min_ms(text: str) -> float:
    """BCC's ``duration_ms``: a number of milliseconds, fractions allowed,
    0..:data:`MAX_MS` (nan and inf refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of milliseconds (0..{MAX_MS})") from None
    if not 0 <= value <= MAX_MS:                # also refuses nan
        raise argparse.ArgumentTypeError(
            f"{text} is out of range: milliseconds must be 0..{MAX_MS} "
            "(the latency is compared in nanoseconds, a u64)")
    return value


def main(argv=None) -> int:
    parser = ToolParser("tcpconnlat", "Trace TCP connects and show connection latency",
                        examples=[
                            "./tcpconnlat           # trace all TCP connect()s",
                            "./tcpconnlat 1         # trace connection latency slower "
                            "than 1 ms",
                            "./tcpconnlat 0.1       # trace connection latency slower "
                            "than 100 us",
                            "./tcpconnlat -t        # include timestamps",
                            "./tcpconnlat -p 181    # only trace PID 181",
                            "./tcpconnlat -L        # include LPORT while printing outputs",
                            "./tcpconnlat -4        # trace IPv4 family only",
                            "./tcpconnlat -6        # trace IPv6 family only",
                        ])
    parser.add_argument("-t", "--timestamp", action="store_true",
                        help="include timestamp on output")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    parser.add_argument("-L", "--lport", action="store_true", help="include LPORT on output")
    family = parser.add_mutually_exclusive_group()
    family.add_argument("-4", "--ipv4", action="store_true", help="trace IPv4 family only")
    family.add_argument("-6", "--ipv6", action="store_true", help="trace IPv6 family only")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per connection (NDJSON), keys: the columns")
    parser.add_argument("duration_ms", nargs="?", type=min_ms, default=0.0,
                        help="minimum duration to trace (ms)")
    args = parser.parse_args(argv)

    consts = {"TARGET_PID": args.pid,
              "MIN_NS": min(int(args.duration_ms * 1000) * 1000, 2**64 - 1),
              "FAMILY": AF_INET if args.ipv4 else AF_INET6 if args.ipv6 else 0}
    with load_tool(__name__, consts=consts) as mod:
        mod.on("events", batch_printer(args), rows=True)
        run_tool(mod, header=None if args.json else column_header(args), json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
