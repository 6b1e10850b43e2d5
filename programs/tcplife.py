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

from pybpf.dsl import (
    HashMap, PerfEventArray, Struct, char, comm, const, kernel_ptr, ktime_ns, pid,
    tracepoint, u8, u16, u32, u64,
)
from pybpf.tooling import (
    Clock, ToolParser, ip_address, load_tool, pid_number, port_number, run_tool,
    tool_main,
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
    parser.add_argument("-s", "--csv", action="store_true",
                        help="comma separated values output")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    family = parser.add_mutually_exclusive_group()
    family.add_argument("-4", "--ipv4", action="store_true", help="trace IPv4 family only")
    family.add_argument("-6", "--ipv6", action="store_true", help="trace IPv6 family only")
    parser.add_argument("-L", "--localport", type=port_number, default=0,
                        help="trace this local port only")
    parser.add_argument("-D", "--remoteport", type=port_number, default=0,
                        help="trace this remote port only")
    args = parser.parse_args(argv)

    clock = Clock()
    if args.csv:
        head = "PID,COMM,LADDR,LPORT,RADDR,RPORT,TX_KB,RX_KB,MS"
        prefix = ("TIME," if args.time else "") + ("TIME(s)," if args.timestamp else "")
    elif args.wide:
        head = (f"{'PID':<7} {'COMM':<16.16} {'LADDR':<26} {'LPORT':<5} {'RADDR':<26} "
                f"{'RPORT':<5} {'TX_KB':>6} {'RX_KB':>6} MS")
        prefix = ("TIME     " if args.time else "") + ("TIME(s)   " if args.timestamp else "")
    else:
        head = (f"{'PID':<5} {'COMM':<10.10} {'LADDR':<15} {'LPORT':<5} {'RADDR':<15} "
                f"{'RPORT':<5} {'TX_KB':>5} {'RX_KB':>5} MS")
        prefix = ("TIME     " if args.time else "") + ("TIME(s)   " if args.timestamp else "")

    def show(e: Life) -> None:
        la, ra = ip_address(e.family, e.laddr), ip_address(e.family, e.raddr)
        tx, rx, ms = e.tx_bytes // 1024, e.rx_bytes // 1024, e.span_ns / 1e6
        cols = []
        if args.time:
            cols.append(clock.wall())
        if args.timestamp:
            cols.append(f"{clock.elapsed(e.ts_ns):.6f}")
        if args.csv:
            print(",".join(cols + [str(e.pid), e.comm, la, str(e.lport), ra, str(e.rport),
                                   str(tx), str(rx), f"{ms:.2f}"]))
            return
        if args.time:
            cols[0] = f"{cols[0]:<8}"
        if args.timestamp:
            cols[-1] = f"{cols[-1]:<9}"
        if args.wide:
            line = (f"{e.pid:<7} {e.comm:<16.16} {la:<26} {e.lport:<5} {ra:<26} "
                    f"{e.rport:<5} {tx:>6} {rx:>6} {ms:.2f}")
        else:
            line = (f"{e.pid:<5} {e.comm:<10.10} {la:<15} {e.lport:<5} {ra:<15} "
                    f"{e.rport:<5} {tx:>5} {rx:>5} {ms:.2f}")
        print(" ".join(cols + [line]))

    consts = {"TARGET_PID": args.pid, "LOCAL_PORT": args.localport,
              "REMOTE_PORT": args.remoteport,
              "FAMILY": 2 if args.ipv4 else 10 if args.ipv6 else 0}
    with load_tool(__name__, consts=consts) as mod:
        mod.on("events", show)
        print(prefix + head)
        run_tool(mod)
    return 0


if __name__ == "__main__":
    tool_main(main)
