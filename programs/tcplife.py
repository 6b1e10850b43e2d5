#!/usr/bin/env python3
"""tcplife: trace TCP sessions from open to close, like BCC's tcplife.

``sock:inet_sock_set_state`` fires on every TCP state change, keyed here by the socket
address ``skaddr``: the first change below FIN_WAIT1 records the session's start, a
change to SYN_SENT (the client connecting) or LAST_ACK (the server closing after the
client did) records who owns it, and the change to CLOSE prints the session. Bytes
sent and received are read from the socket itself: ``kernel_ptr(args.skaddr,
"tcp_sock")`` treats the address as a ``struct tcp_sock`` and reads its
``bytes_acked`` and ``bytes_received`` through BTF.
"""

import json

from pybpf.dsl import (
    HashMap, PerfEventArray, Struct, char, comm, const, kernel_ptr, ktime_ns, pid,
    tracepoint, u8, u16, u32, u64,
)
from pybpf.tooling import (
    Clock, ToolParser, ip_address, load_tool, pid_number, port_number, run_tool, text_of,
    tool_main, write_lines,
)

AF_INET, IPPROTO_TCP = 2, 6
TCP_SYN_SENT, TCP_FIN_WAIT1, TCP_CLOSE, TCP_LAST_ACK = 2, 4, 7, 9


class Session(Struct):
    start_ns: u64
    pid: u32
    comm: char[16]


class Life(Struct):
    ts_ns: u64
    span_ns: u64
    tx_bytes: u64
    rx_bytes: u64
    pid: u32
    family: u16
    lport: u16
    rport: u16
    laddr: u8[16]
    raddr: u8[16]
    comm: char[16]


events = PerfEventArray(Life)
sessions = HashMap(u64, Session, max_entries=10240)
TARGET_PID = const(u32, 0)
LOCAL_PORT = const(u16, 0)
REMOTE_PORT = const(u16, 0)
FAMILY = const(u16, 0)


@tracepoint("sock:inet_sock_set_state")
def tcp_state(args):
    if args.protocol != IPPROTO_TCP:
        return 0
    if FAMILY and args.family != FAMILY:
        return 0
    if LOCAL_PORT and args.sport != LOCAL_PORT:
        return 0
    if REMOTE_PORT and args.dport != REMOTE_PORT:
        return 0
    sk = args.skaddr
    if args.newstate < TCP_FIN_WAIT1 and sk not in sessions:
        sessions[sk] = Session(start_ns=ktime_ns())
    if args.newstate == TCP_SYN_SENT or args.newstate == TCP_LAST_ACK:
        p = sessions.get(sk)
        if p:
            p.pid = pid()
            p.comm = comm()
    if args.newstate != TCP_CLOSE:
        return 0
    p = sessions.get(sk)
    if p is None:
        return 0                      # began before we started tracing
    e = Life()
    e.ts_ns = ktime_ns()
    e.span_ns = e.ts_ns - p.start_ns
    e.pid = p.pid
    e.comm = p.comm
    if e.pid == 0:                    # no owner cached: the task closing it
        e.pid = pid()
        e.comm = comm()
    del sessions[sk]
    if TARGET_PID and e.pid != TARGET_PID:
        return 0
    tp = kernel_ptr(sk, "tcp_sock")
    e.tx_bytes = tp.bytes_acked
    e.rx_bytes = tp.bytes_received
    e.family = args.family
    e.lport = args.sport
    e.rport = args.dport
    if args.family == AF_INET:
        for i in range(4):
            e.laddr[i] = args.saddr[i]
            e.raddr[i] = args.daddr[i]
    else:
        e.laddr = args.saddr_v6
        e.raddr = args.daddr_v6
    events.output(e)
    return 0


def column_header(args) -> str:
    """The header line, as BCC prints it for these options."""
    if args.csv:
        head = "PID,COMM,LADDR,LPORT,RADDR,RPORT,TX_KB,RX_KB,MS"
        return ("TIME," if args.time else "") + ("TIME(s)," if args.timestamp else "") + head
    if args.wide:
        head = (f"{'PID':<7} {'COMM':<16.16} {'LADDR':<26} {'LPORT':<5} {'RADDR':<26} "
                f"{'RPORT':<5} {'TX_KB':>6} {'RX_KB':>6} MS")
    else:
        head = (f"{'PID':<5} {'COMM':<10.10} {'LADDR':<15} {'LPORT':<5} {'RADDR':<15} "
                f"{'RPORT':<5} {'TX_KB':>5} {'RX_KB':>5} MS")
    return ("TIME     " if args.time else "") + ("TIME(s)   " if args.timestamp else "") + head


def batch_printer(args, clock: Clock):
    """The callback of ``mod.on("events", ..., rows=True)``: one line (CSV row, JSON
    object) per session, a batch written in one block; the wall clock (-T) is read once
    per batch, -t counts from ``clock``'s start."""

    def show(rows) -> None:
        wall = clock.wall() if args.time else ""
        lines = []
        for ts, span, tx, rx, pid, family, lport, rport, laddr, raddr, comm in rows:
            la, ra = ip_address(family, laddr), ip_address(family, raddr)
            tx, rx, ms = tx // 1024, rx // 1024, span / 1e6
            if args.json:
                obj = {"time": wall} if args.time else {}
                if args.timestamp:
                    obj["time(s)"] = round(clock.elapsed(ts), 6)
                obj.update(pid=pid, comm=text_of(comm), laddr=la, lport=lport, raddr=ra,
                           rport=rport, tx_kb=tx, rx_kb=rx, ms=round(ms, 2))
                lines.append(json.dumps(obj))
                continue
            cols = [wall] if args.time else []
            if args.timestamp:
                cols.append(f"{clock.elapsed(ts):.6f}")
            if args.csv:
                lines.append(",".join(cols + [str(pid), text_of(comm), la, str(lport), ra,
                                              str(rport), str(tx), str(rx), f"{ms:.2f}"]))
                continue
            if args.time:
                cols[0] = f"{cols[0]:<8}"
            if args.timestamp:
                cols[-1] = f"{cols[-1]:<9}"
            if args.wide:
                cols.append(f"{pid:<7} {text_of(comm):<16.16} {la:<26} {lport:<5} {ra:<26} "
                            f"{rport:<5} {tx:>6} {rx:>6} {ms:.2f}")
            else:
                cols.append(f"{pid:<5} {text_of(comm):<10.10} {la:<15} {lport:<5} {ra:<15} "
                            f"{rport:<5} {tx:>5} {rx:>5} {ms:.2f}")
            lines.append(" ".join(cols))
        write_lines(lines)

    return show


def main(argv=None) -> int:
    parser = ToolParser("tcplife", "Trace the lifespan of TCP sessions and summarize",
                        examples=[
                            "./tcplife           # trace all TCP connect()s",
                            "./tcplife -T        # include time column (HH:MM:SS)",
                            "./tcplife -w        # wider columns (fit IPv6)",
                            "./tcplife -stT      # csv output, with times & timestamps",
                            "./tcplife -p 181    # only trace PID 181",
                            "./tcplife -L 80     # only trace local port 80",
                            "./tcplife -D 80     # only trace remote port 80",
                            "./tcplife -4        # only trace IPv4 family",
                            "./tcplife -6        # only trace IPv6 family",
                        ])
    parser.add_argument("-T", "--time", action="store_true", help="include time column "
                        "on output (HH:MM:SS)")
    parser.add_argument("-t", "--timestamp", action="store_true",
                        help="include timestamp on output (seconds)")
    parser.add_argument("-w", "--wide", action="store_true", help="wide column output "
                        "(fits IPv6 addresses)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("-s", "--csv", action="store_true",
                        help="comma separated values output")
    output.add_argument("--json", action="store_true",
                        help="one JSON object per session (NDJSON), keys: the columns")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    family = parser.add_mutually_exclusive_group()
    family.add_argument("-4", "--ipv4", action="store_true", help="trace IPv4 family only")
    family.add_argument("-6", "--ipv6", action="store_true", help="trace IPv6 family only")
    parser.add_argument("-L", "--localport", type=port_number, default=0,
                        help="trace this local port only")
    parser.add_argument("-D", "--remoteport", type=port_number, default=0,
                        help="trace this remote port only")
    args = parser.parse_args(argv)

    clock = Clock()                     # -t: seconds since the tool started
    consts = {"TARGET_PID": args.pid, "LOCAL_PORT": args.localport,
              "REMOTE_PORT": args.remoteport,
              "FAMILY": 2 if args.ipv4 else 10 if args.ipv6 else 0}
    with load_tool(__name__, consts=consts) as mod:
        mod.on("events", batch_printer(args, clock), rows=True)
        run_tool(mod, header=None if args.json else column_header(args), json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
