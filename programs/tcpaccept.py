#!/usr/bin/env python3
"""tcpaccept: trace passive TCP connections (accept()), like BCC's tcpaccept.

BCC reads the new socket returned by ``inet_csk_accept`` (a kretprobe); kprobes are not
open on every host (this project's test host has none), so this tool traces the exits
of the ``accept`` and ``accept4`` system calls (``syscalls:sys_exit_accept*``, Linux
4.x with CONFIG_FTRACE_SYSCALLS) and follows the new descriptor to its socket through
BTF: the task's ``files->fdt->fd[fd]`` is a ``struct file`` whose ``private_data`` is
the ``struct socket``, whose ``sk`` gives the family, protocol, addresses and ports.
Only TCP sockets of AF_INET/AF_INET6 are shown. As in BCC the PID and COMM are the
accepting task's. An accept made without these system calls (io_uring's) is not seen;
where the tracepoints are missing the tool stops at load with an error naming them.
"""

import argparse
import json

from pybpf.dsl import (
    HashMap, PerfEventArray, Struct, char, comm, const, current_task, kernel_ptr, ktime_ns,
    ntohs, pid, probe_read_kernel, tracepoint, u8, u16, u32, u64,
)
from pybpf.tooling import (
    Clock, ToolParser, ip_address, load_tool, pid_number, port_number, run_tool, text_of,
    tool_main, write_lines,
)

AF_INET, AF_INET6, IPPROTO_TCP = 2, 10, 6
MAX_PORTS = 64


class Accept(Struct):
    ts_ns: u64
    pid: u32
    family: u16
    lport: u16
    dport: u16
    pad: u16
    saddr: u8[16]
    daddr: u8[16]
    comm: char[16]


events = PerfEventArray(Accept)
lports = HashMap(u16, u8, max_entries=MAX_PORTS)     # -P: the local ports to show
TARGET_PID = const(u32, 0)
FILTER_PORT = const(u32, 0)
FAMILY = const(u16, 0)


def accepted(fd: u64) -> u32:
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    fdt = current_task().files.fdt
    if fd >= u64(fdt.max_fds):
        return 0
    filep = probe_read_kernel(u64(fdt.fd) + fd * 8, u64)
    if filep == 0:
        return 0
    sock = kernel_ptr(kernel_ptr(filep, "file").private_data, "socket")
    sk = sock.sk
    common = sk.__sk_common
    family = u16(common.skc_family)
    if family != AF_INET and family != AF_INET6:
        return 0
    if FAMILY and family != FAMILY:
        return 0
    if u32(sk.sk_protocol) != IPPROTO_TCP:
        return 0
    lport = u16(common.skc_num)
    if FILTER_PORT and lport not in lports:
        return 0
    e = Accept()
    e.ts_ns = ktime_ns()
    e.pid = pid()
    e.comm = comm()
    e.family = family
    e.lport = lport
    e.dport = ntohs(common.skc_dport)
    if family == AF_INET:
        src = u32(common.skc_rcv_saddr)
        dst = u32(common.skc_daddr)
        for i in range(4):
            e.saddr[i] = u8(src >> (8 * i))
            e.daddr[i] = u8(dst >> (8 * i))
    else:
        e.saddr = common.skc_v6_rcv_saddr.in6_u.u6_addr8
        e.daddr = common.skc_v6_daddr.in6_u.u6_addr8
    events.output(e)
    return 0


@tracepoint("syscalls:sys_exit_accept4")
def accept4_exit(args):
    if args.ret < 0:
        return 0
    return accepted(u64(args.ret))


@tracepoint("syscalls:sys_exit_accept")
def accept_exit(args):
    if args.ret < 0:
        return 0
    return accepted(u64(args.ret))


def column_header(args) -> str:
    """The header line, as BCC prints it for these options."""
    return (("TIME     " if args.time else "") + ("TIME(s)  " if args.timestamp else "")
            + f"{'PID':<7} {'COMM':<12} {'IP':<2} {'RADDR':<16} {'RPORT':<5} "
              f"{'LADDR':<16} {'LPORT':<5}")


def batch_printer(args, clock: Clock):
    """The callback of ``mod.on("events", ..., rows=True)``: one line (or JSON object)
    per accept; -T reads the wall clock once per batch, -t counts from the first accept
    shown, as BCC does."""
    first = []

    def show(rows) -> None:
        if rows and not first:
            first.append(rows[0][0])
        wall = clock.wall() if args.time else ""
        lines = []
        for ts, pid, family, lport, dport, _, saddr, daddr, comm in rows:
            la, ra = ip_address(family, saddr), ip_address(family, daddr)
            ip = 4 if family == AF_INET else 6
            since = (ts - first[0]) / 1e9
            if args.json:
                obj = {"time": wall} if args.time else {}
                if args.timestamp:
                    obj["time(s)"] = round(since, 3)
                obj.update(pid=pid, comm=text_of(comm), ip=ip, raddr=ra, rport=dport,
                           laddr=la, lport=lport)
                lines.append(json.dumps(obj))
                continue
            lead = (f"{wall:<9}" if args.time else "") + (f"{since:<9.3f}" if args.timestamp
                                                          else "")
            lines.append(f"{lead}{pid:<7} {text_of(comm):<12.12} {ip:<2} {ra:<16} "
                         f"{dport:<5} {la:<16} {lport:<5}")
        write_lines(lines)

    return show


def port_list(text: str) -> list:
    """A comma-separated list of local ports (BCC's -P), at most 64."""
    ports = [port_number(p.strip()) for p in text.split(",")]
    if len(ports) > MAX_PORTS:
        raise argparse.ArgumentTypeError(f"at most {MAX_PORTS} ports")
    return ports


def main(argv=None) -> int:
    parser = ToolParser("tcpaccept", "Trace TCP accepts", examples=[
        "./tcpaccept           # trace all TCP accept()s",
        "./tcpaccept -t        # include timestamps",
        "./tcpaccept -P 80,81  # only trace port 80 and 81",
        "./tcpaccept -p 181    # only trace PID 181",
        "./tcpaccept -4        # trace IPv4 family",
        "./tcpaccept -6        # trace IPv6 family",
    ])
    parser.add_argument("-T", "--time", action="store_true",
                        help="include time column on output (HH:MM:SS)")
    parser.add_argument("-t", "--timestamp", action="store_true",
                        help="include timestamp on output")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    parser.add_argument("-P", "--port", type=port_list, default=[],
                        help="comma-separated list of local ports to trace")
    family = parser.add_mutually_exclusive_group()
    family.add_argument("-4", "--ipv4", action="store_true", help="trace IPv4 family only")
    family.add_argument("-6", "--ipv6", action="store_true", help="trace IPv6 family only")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per accept (NDJSON), keys: the columns")
    args = parser.parse_args(argv)

    clock = Clock()
    consts = {"TARGET_PID": args.pid, "FILTER_PORT": int(bool(args.port)),
              "FAMILY": AF_INET if args.ipv4 else AF_INET6 if args.ipv6 else 0}
    with load_tool(__name__, consts=consts) as mod:
        for port in args.port:          # until filled, every accept is filtered out
            mod["lports"][port] = 1
        mod.on("events", batch_printer(args, clock), rows=True)
        run_tool(mod, header=None if args.json else column_header(args), json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
