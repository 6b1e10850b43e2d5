#!/usr/bin/env python3
"""tcpstates: trace TCP socket state changes and the time spent in each state, like
BCC's tcpstates.

Traces the ``sock:inet_sock_set_state`` tracepoint (Linux 4.16 and later; earlier
kernels lack it and the tool stops at load with an error naming the tracepoint). Each
change prints the socket's kernel address (``SKADDR``, a session's identity), the task
that was running when the state changed (``C-PID``/``C-COMM``: the "current" task,
often not the socket's owner, e.g. a softirq handling a packet), both ends, the old
and new state, and the milliseconds the socket spent in the old state. That span is
measured from the previous change this tool saw for the same socket: the first change
it sees of a socket shows 0.000. The per-socket start times live in a hash map keyed by
the socket address, dropped when the socket reaches CLOSE.

-L/-D take comma-separated port lists (up to 64 ports each), kept in hash maps; a
socket whose ports do not match is forgotten, as BCC does. BCC's -Y (systemd journal)
is not offered: it needs the systemd Python module (not in the standard library).
"""

import argparse
import json

from pybpf.dsl import (
    HashMap, PerfEventArray, Struct, char, comm, const, ktime_ns, pid, tracepoint, u8, u16,
    i32, u32, u64,
)
from pybpf.tooling import (
    Clock, ToolParser, ip_address, load_tool, port_number, run_tool, text_of, tool_main,
    write_lines,
)

AF_INET, AF_INET6, IPPROTO_TCP, TCP_CLOSE = 2, 10, 6, 7
MAX_PORTS = 64

#: the kernel's TCP state numbers (include/net/tcp_states.h) as BCC names them
STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
          6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
          11: "CLOSING", 12: "NEW_SYN_RECV"}


class Change(Struct):
    ts_ns: u64
    skaddr: u64
    span_ns: u64
    pid: u32
    oldstate: i32
    newstate: i32
    family: u16
    lport: u16
    dport: u16
    saddr: u8[16]
    daddr: u8[16]
    comm: char[16]


events = PerfEventArray(Change)
last = HashMap(u64, u64, max_entries=10240)        # socket address -> time of last change
lports = HashMap(u16, u8, max_entries=MAX_PORTS)   # -L: the local ports to show
dports = HashMap(u16, u8, max_entries=MAX_PORTS)   # -D: the remote ports to show
FILTER_LPORT = const(u32, 0)
FILTER_DPORT = const(u32, 0)
FAMILY = const(u16, 0)


@tracepoint("sock:inet_sock_set_state")
def tcp_set_state(args):
    if args.protocol != IPPROTO_TCP:
        return 0
    sk = args.skaddr
    if FILTER_LPORT and args.sport not in lports:
        del last[sk]
        return 0
    if FILTER_DPORT and args.dport not in dports:
        del last[sk]
        return 0
    if FAMILY and args.family != FAMILY:
        return 0
    now = ktime_ns()
    e = Change()
    e.ts_ns = now
    e.skaddr = sk
    t = last.get(sk)
    if t:
        e.span_ns = now - t[0]
    e.pid = pid()
    e.comm = comm()
    e.oldstate = args.oldstate
    e.newstate = args.newstate
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
    if args.newstate == TCP_CLOSE:
        del last[sk]
    else:
        last[sk] = now
    return 0


def state_name(state: int) -> str:
    """BCC's name of TCP state ``state`` (``UNKNOWN`` past the known ones)."""
    return STATES.get(state, "UNKNOWN")


def column_header(args) -> str:
    """The header line, as BCC prints it for these options."""
    names = ("SKADDR", "C-PID", "C-COMM", "LADDR", "LPORT", "RADDR", "RPORT", "OLDSTATE",
             "NEWSTATE", "MS")
    if args.csv:
        return (("TIME," if args.time else "") + ("TIME(s)," if args.timestamp else "")
                + ",".join(names[:3] + ("IP",) + names[3:]))
    lead = ("TIME     " if args.time else "") + ("TIME(s)   " if args.timestamp else "")
    if args.wide:
        return lead + (f"{'SKADDR':<16} {'C-PID':<5} {'C-COMM':<16.16} {'IP':<2} "
                       f"{'LADDR':<39} {'LPORT':<5} {'RADDR':<39} {'RPORT':<5} "
                       f"{'OLDSTATE':<11} -> {'NEWSTATE':<11} MS")
    return lead + (f"{'SKADDR':<16} {'C-PID':<5} {'C-COMM':<10.10} {'LADDR':<15} "
                   f"{'LPORT':<5} {'RADDR':<15} {'RPORT':<5} {'OLDSTATE':<11} -> "
                   f"{'NEWSTATE':<11} MS")


def batch_printer(args, clock: Clock):
    """The callback of ``mod.on("events", ..., rows=True)``: one line (CSV row, JSON
    object) per state change, a batch written in one block; -T reads the wall clock
    once per batch, -t counts from the first change shown (as BCC does)."""
    first = []

    def show(rows) -> None:
        if rows and not first:
            first.append(rows[0][0])
        wall = clock.wall() if args.time else ""
        lines = []
        for ts, sk, span, pid, old, new, family, lport, dport, saddr, daddr, comm in rows:
            la, ra = ip_address(family, saddr), ip_address(family, daddr)
            ip = "4" if family == AF_INET else "6"
            since = (ts - first[0]) / 1e9
            ms = span / 1e6
            if args.json:
                obj = {"time": wall} if args.time else {}
                if args.timestamp:
                    obj["time(s)"] = round(since, 6)
                obj.update({"skaddr": f"{sk:x}", "c-pid": pid, "c-comm": text_of(comm),
                            "ip": int(ip), "laddr": la, "lport": lport, "raddr": ra,
                            "rport": dport, "oldstate": state_name(old),
                            "newstate": state_name(new), "ms": round(ms, 3)})
                lines.append(json.dumps(obj))
                continue
            if args.csv:
                cols = ([wall] if args.time else []) + ([f"{since:.6f}"] if args.timestamp
                                                        else [])
                lines.append(",".join(cols + [f"{sk:x}", str(pid), text_of(comm), ip, la,
                                              str(lport), ra, str(dport), state_name(old),
                                              state_name(new), f"{ms:.3f}"]))
                continue
            lead = (f"{wall:<8} " if args.time else "") + (f"{since:<9.6f} " if args.timestamp
                                                           else "")
            if args.wide:
                body = (f"{sk:<16x} {pid:<5} {text_of(comm):<16.16} {ip:<2} {la:<39} "
                        f"{lport:<5} {ra:<39} {dport:<5} ")
            else:
                body = (f"{sk:<16x} {pid:<5} {text_of(comm):<10.10} {la:<15} {lport:<5} "
                        f"{ra:<15} {dport:<5} ")
            lines.append(f"{lead}{body}{state_name(old):<11} -> {state_name(new):<11} "
                         f"{ms:.3f}")
        write_lines(lines)

    return show


def port_list(text: str) -> list:
    """A comma-separated list of ports (BCC's -L/-D), each 0..65535, at most 64."""
    ports = [port_number(p.strip()) for p in text.split(",")]
    if len(ports) > MAX_PORTS:
        raise argparse.ArgumentTypeError(f"at most {MAX_PORTS} ports")
    return ports


def main(argv=None) -> int:
    parser = ToolParser("tcpstates", "Trace TCP session state changes and durations",
                        examples=[
                            "./tcpstates           # trace all TCP state changes",
                            "./tcpstates -t        # include timestamp column",
                            "./tcpstates -T        # include time column (HH:MM:SS)",
                            "./tcpstates -w        # wider columns (fit IPv6)",
                            "./tcpstates -stT      # csv output, with times & timestamps",
                            "./tcpstates -L 80     # only trace local port 80",
                            "./tcpstates -L 80,81  # only trace local ports 80 and 81",
                            "./tcpstates -D 80     # only trace remote port 80",
                            "./tcpstates -4        # trace IPv4 family only",
                            "./tcpstates -6        # trace IPv6 family only",
                        ])
    parser.add_argument("-T", "--time", action="store_true",
                        help="include time column on output (HH:MM:SS)")
    parser.add_argument("-t", "--timestamp", action="store_true",
                        help="include timestamp on output (seconds)")
    parser.add_argument("-w", "--wide", action="store_true",
                        help="wide column output (fits IPv6 addresses)")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("-s", "--csv", action="store_true",
                        help="comma separated values output")
    output.add_argument("--json", action="store_true",
                        help="one JSON object per state change (NDJSON), keys: the columns")
    parser.add_argument("-L", "--localport", type=port_list, default=[],
                        help="comma-separated list of local ports to trace.")
    parser.add_argument("-D", "--remoteport", type=port_list, default=[],
                        help="comma-separated list of remote ports to trace.")
    family = parser.add_mutually_exclusive_group()
    family.add_argument("-4", "--ipv4", action="store_true", help="trace IPv4 family only")
    family.add_argument("-6", "--ipv6", action="store_true", help="trace IPv6 family only")
    args = parser.parse_args(argv)

    clock = Clock()
    consts = {"FILTER_LPORT": int(bool(args.localport)),
              "FILTER_DPORT": int(bool(args.remoteport)),
              "FAMILY": AF_INET if args.ipv4 else AF_INET6 if args.ipv6 else 0}
    with load_tool(__name__, consts=consts) as mod:
        # until these are filled every change is filtered out, none shown wrongly
        for port in args.localport:
            mod["lports"][port] = 1
        for port in args.remoteport:
            mod["dports"][port] = 1
        mod.on("events", batch_printer(args, clock), rows=True)
        run_tool(mod, header=None if args.json else column_header(args), json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
