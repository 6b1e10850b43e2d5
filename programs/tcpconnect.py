#!/usr/bin/env python3
"""tcpconnect: trace active TCP connections (connect()), like BCC's tcpconnect.

Every socket state change fires the ``sock:inet_sock_set_state`` tracepoint; a change
to SYN_SENT is a connect() starting, in the context of the connecting task, so pid()
and comm() name who connects. The tracepoint gives the addresses and ports already
decoded (ports in host byte order).
"""

import json

from pybpf.dsl import (
    PerfEventArray, Struct, char, comm, const, ktime_ns, pid, tracepoint, u8, u16, u32,
    u64, uid,
)
from pybpf.tooling import (
    ToolParser, ip_address, load_tool, pid_number, port_number, run_tool, text_of,
    tool_main, uid_number, write_lines,
)

AF_INET, AF_INET6, IPPROTO_TCP, TCP_SYN_SENT = 2, 10, 6, 2


class Connect(Struct):
    ts_ns: u64
    pid: u32
    uid: u32
    family: u16
    dport: u16
    saddr: u8[16]
    daddr: u8[16]
    comm: char[16]


events = PerfEventArray(Connect)
TARGET_PID = const(u32, 0)
TARGET_PORT = const(u16, 0)
TARGET_UID = const(u32, 0)
FILTER_UID = const(u32, 0)


@tracepoint("sock:inet_sock_set_state")
def tcp_connect(args):
    if args.protocol != IPPROTO_TCP or args.newstate != TCP_SYN_SENT:
        return 0
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    if TARGET_PORT and args.dport != TARGET_PORT:
        return 0
    if FILTER_UID and uid() != TARGET_UID:
        return 0
    e = Connect()
    e.ts_ns = ktime_ns()
    e.pid = pid()
    e.uid = uid()
    e.comm = comm()
    e.family = args.family
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
    return (("TIME(s)  " if args.timestamp else "") + ("UID    " if args.print_uid else "")
            + f"{'PID':<6} {'COMM':<12} {'IP':<2} {'SADDR':<16} {'DADDR':<16} {'DPORT':<4}")


def batch_printer(args):
    """The callback of ``mod.on("events", ..., rows=True)``: one line (or JSON object)
    per connect, a batch written in one block; -t counts from the first connect."""
    first = []

    def show(rows) -> None:
        if rows and not first:
            first.append(rows[0][0])
        lines = []
        for ts, pid, uid, family, dport, saddr, daddr, comm in rows:
            ip = 4 if family == AF_INET else 6
            src, dst = ip_address(family, saddr), ip_address(family, daddr)
            if args.json:
                obj = {"time(s)": round((ts - first[0]) / 1e9, 3)} if args.timestamp else {}
                if args.print_uid:
                    obj["uid"] = uid
                obj.update(pid=pid, comm=text_of(comm), ip=ip, saddr=src, daddr=dst,
                           dport=dport)
                lines.append(json.dumps(obj))
                continue
            lead = f"{(ts - first[0]) / 1e9:<9.3f}" if args.timestamp else ""
            if args.print_uid:
                lead += f"{uid:<6} "
            lines.append(f"{lead}{pid:<6} {text_of(comm):<12.12} {ip:<2} {src:<16} "
                         f"{dst:<16} {dport:<4}")
        write_lines(lines)

    return show


def main(argv=None) -> int:
    parser = ToolParser("tcpconnect", "Trace TCP connects", examples=[
        "./tcpconnect           # trace all TCP connect()s",
        "./tcpconnect -t        # include timestamps",
        "./tcpconnect -p 181    # only trace PID 181",
        "./tcpconnect -P 80     # only trace port 80",
        "./tcpconnect -U        # include UID",
        "./tcpconnect -u 1000   # only trace UID 1000",
    ])
    parser.add_argument("-t", "--timestamp", action="store_true",
                        help="include timestamp on output")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    parser.add_argument("-P", "--port", type=port_number, default=0,
                        help="trace this destination port only")
    parser.add_argument("-U", "--print-uid", action="store_true",
                        help="include UID on output")
    parser.add_argument("-u", "--uid", type=uid_number, help="trace this UID only")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per connect (NDJSON), keys: the columns")
    args = parser.parse_args(argv)

    consts = {"TARGET_PID": args.pid, "TARGET_PORT": args.port,
              "FILTER_UID": int(args.uid is not None), "TARGET_UID": args.uid or 0}
    with load_tool(__name__, consts=consts) as mod:
        mod.on("events", batch_printer(args), rows=True)
        run_tool(mod, header=None if args.json else column_header(args), json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
