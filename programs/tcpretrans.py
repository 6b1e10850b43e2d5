#!/usr/bin/env python3
"""tcpretrans: trace TCP retransmits, like BCC's tcpretrans.

Traces the ``tcp:tcp_retransmit_skb`` tracepoint (Linux 4.15 and later), using its
``state`` and ``family`` fields (later kernels than the tracepoint itself: where they are
missing the tool stops at load with a compile error naming the field) and the
addresses and ports it gives already decoded. -s reads the segment's first sequence
number from the TCP control block at the start of ``sk_buff.cb`` (``skbaddr`` through
BTF, so it needs ``/sys/kernel/btf/vmlinux``). Where the tracepoint is missing the tool
stops at load with an error naming it. The tracepoint also fires for a retransmit the
device refused (its ``err`` field); such a retransmit is shown, as BCC shows it.

The PID column is the task running when the kernel retransmitted: usually not the
connection's owner (0 for a timer that fired in the idle task), as in BCC.

-c counts retransmits per flow in a hash map and prints the counts at the end. -l
(tail loss probes, type ``L``) needs a kprobe on ``tcp_send_loss_probe``: where kprobes
are refused (this project's test host) -l stops at load with that error; there is no
tracepoint for loss probes to fall back to.
"""

import json

from pybpf.dsl import (
    HashMap, PerfEventArray, Struct, const, kernel_ptr, kprobe, ntohs, pid, tracepoint, u8,
    u16, u32, u64,
)
from pybpf.tooling import (
    Clock, ToolParser, ip_address, load_tool, run_tool, tool_main, write_lines,
)

AF_INET, AF_INET6 = 2, 10
RETRANSMIT, TLP = 1, 2


class Retrans(Struct):
    pid: u32
    seq: u32
    kind: u8
    state: u8
    family: u16
    lport: u16
    dport: u16
    saddr: u8[16]
    daddr: u8[16]


class Flow(Struct):
    saddr: u8[16]
    daddr: u8[16]
    family: u16
    lport: u16
    dport: u16
    pad: u16


events = PerfEventArray(Retrans)
counts = HashMap(Flow, u64, max_entries=10240)
FAMILY = const(u16, 0)
COUNT = const(u32, 0)


@tracepoint("tcp:tcp_retransmit_skb")
def tcp_retransmit(args):
    if FAMILY and args.family != FAMILY:
        return 0
    if COUNT:
        f = Flow()
        f.family = args.family
        f.lport = args.sport
        f.dport = args.dport
        if args.family == AF_INET:
            for i in range(4):
                f.saddr[i] = args.saddr[i]
                f.daddr[i] = args.daddr[i]
        else:
            f.saddr = args.saddr_v6
            f.daddr = args.daddr_v6
        counts[f] += 1
        return 0
    e = Retrans()
    e.pid = pid()
    # the segment's first sequence number: the TCP control block opens sk_buff.cb
    cb = kernel_ptr(args.skbaddr, "sk_buff").cb
    e.seq = u32(cb[0]) | u32(cb[1]) << 8 | u32(cb[2]) << 16 | u32(cb[3]) << 24
    e.kind = RETRANSMIT
    e.state = u8(args.state)
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


@kprobe("tcp_send_loss_probe")
def tcp_loss_probe(ctx):
    common = ctx.sk.__sk_common
    family = u16(common.skc_family)
    if FAMILY and family != FAMILY:
        return 0
    if family != AF_INET and family != AF_INET6:
        return 0
    if COUNT:
        return 0                        # BCC's -c counts retransmits only
    e = Retrans()
    e.pid = pid()
    e.kind = TLP
    e.state = u8(common.skc_state)
    e.family = family
    e.lport = common.skc_num
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


#: the kernel's TCP state numbers (include/net/tcp_states.h) as BCC names them
STATES = {1: "ESTABLISHED", 2: "SYN_SENT", 3: "SYN_RECV", 4: "FIN_WAIT1", 5: "FIN_WAIT2",
          6: "TIME_WAIT", 7: "CLOSE", 8: "CLOSE_WAIT", 9: "LAST_ACK", 10: "LISTEN",
          11: "CLOSING", 12: "NEW_SYN_RECV"}
KINDS = {RETRANSMIT: "R", TLP: "L"}


def state_name(state: int) -> str:
    """BCC's name of TCP state ``state`` (``UNKNOWN`` past the known ones)."""
    return STATES.get(state, "UNKNOWN")


def column_header(args) -> str:
    """The header line, as BCC prints it for these options."""
    head = f"{'TIME':<8} {'PID':<7} {'IP':<2} {'LADDR:LPORT':<20} T> {'RADDR:RPORT':<20}"
    return head + (f" {'STATE':<12} {'SEQ':<10}" if args.sequence else f" {'STATE':<4}")


def batch_printer(args, clock: Clock):
    """The callback of ``mod.on("events", ..., rows=True)``: one line (or JSON object)
    per retransmit; the wall clock is read once per batch, as BCC reads it per event."""

    def show(rows) -> None:
        wall = clock.wall()
        lines = []
        for pid, seq, kind, state, family, lport, dport, saddr, daddr in rows:
            la, ra = ip_address(family, saddr), ip_address(family, daddr)
            ip = 4 if family == AF_INET else 6
            if args.json:
                obj = dict(time=wall, pid=pid, ip=ip, laddr=la, lport=lport,
                           t=KINDS.get(kind, "?"), raddr=ra, rport=dport,
                           state=state_name(state))
                if args.sequence:
                    obj["seq"] = seq
                lines.append(json.dumps(obj))
                continue
            line = (f"{wall:<8} {pid:<7} {ip:<2} {f'{la}:{lport}':<20} "
                    f"{KINDS.get(kind, '?')}> {f'{ra}:{dport}':<20}")
            lines.append(line + (f" {state_name(state):<12} {seq}" if args.sequence
                                 else f" {state_name(state)}"))
        write_lines(lines)

    return show


def print_counts(mod, as_json: bool) -> None:
    """BCC's -c table: one line per flow, fewest retransmits first."""
    flows = sorted(((int(v), k) for k, v in mod["counts"].items()), key=lambda kv: kv[0])
    lines = [] if as_json else ["", f"{'LADDR:LPORT':<25} {'RADDR:RPORT':<25} "
                                    f"{'RETRANSMITS':<10}"]
    for n, k in flows:
        la, ra = ip_address(k.family, k.saddr), ip_address(k.family, k.daddr)
        if as_json:
            lines.append(json.dumps(dict(laddr=la, lport=k.lport, raddr=ra, rport=k.dport,
                                         retransmits=n)))
        else:
            lines.append(f"{f'[{la}]#{k.lport}':<20} <-> {f'[{ra}]#{k.dport}':<20} {n:>10}")
    write_lines(lines)


def main(argv=None) -> int:
    parser = ToolParser("tcpretrans", "Trace TCP retransmits", examples=[
        "./tcpretrans           # trace TCP retransmits",
        "./tcpretrans -l        # include TLP attempts (needs kprobes)",
        "./tcpretrans -4        # trace IPv4 family only",
        "./tcpretrans -6        # trace IPv6 family only",
    ])
    parser.add_argument("-s", "--sequence", action="store_true",
                        help="display TCP sequence numbers")
    parser.add_argument("-l", "--lossprobe", action="store_true",
                        help="include tail loss probe attempts (a kprobe on "
                        "tcp_send_loss_probe)")
    parser.add_argument("-c", "--count", action="store_true",
                        help="count occurred retransmits per flow")
    family = parser.add_mutually_exclusive_group()
    family.add_argument("-4", "--ipv4", action="store_true", help="trace IPv4 family only")
    family.add_argument("-6", "--ipv6", action="store_true", help="trace IPv6 family only")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per retransmit (or per flow with -c), keys: "
                        "the columns")
    args = parser.parse_args(argv)

    clock = Clock()
    consts = {"FAMILY": AF_INET if args.ipv4 else AF_INET6 if args.ipv6 else 0,
              "COUNT": int(args.count)}
    programs = ["tcp_retransmit"] + (["tcp_loss_probe"] if args.lossprobe else [])
    banner = "Tracing retransmits ... Hit Ctrl-C to end"
    with load_tool(__name__, consts=consts, programs=programs) as mod:
        if args.count:
            run_tool(mod, header=None if args.json else banner,
                     summary=lambda: print_counts(mod, args.json))
        else:
            mod.on("events", batch_printer(args, clock), rows=True)
            run_tool(mod, header=None if args.json else banner + "\n" + column_header(args),
                     json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
