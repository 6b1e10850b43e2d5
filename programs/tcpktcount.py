#!/usr/bin/env python3
"""tcpktcount: count the packets and bytes arriving on a network interface, by protocol,
with a tc ingress program (after libbpf-bootstrap's ``tc`` example, which only prints
each packet; BCC and libbpf-tools have no such tool).

A ``sched_cls`` program on the interface's ingress (a TCX link, kernel 6.6; older
kernels: a ``clsact`` qdisc and a netlink filter, kernel 4.5, ``--mode netlink``) reads
the Ethernet type from ``skb->protocol`` and, for IPv4 and IPv6, the IP protocol from the
packet (bounds-checked direct packet access); it adds one packet and ``skb->len`` bytes
(the frame from its Ethernet header on) to a hash map keyed by both, with atomic adds,
and lets the packet through (``TC_ACT_OK``). The counts stay cumulative in the kernel;
each summary prints what was added since the previous one (``-C``: the totals), so no
packet is lost between two summaries. The link is detached when the tool ends (tcx:
closing the link; netlink: deleting the filter, and the qdisc if it created it).
"""

import argparse
import os
import time

from pybpf.dsl import HashMap, Struct, TC_ACT_OK, ntohs, tc, u8, u16, u32, u64
from pybpf.tooling import (
    ToolParser, add_interval_args, load_tool, run_tool, tool_main,
)


class Counts(Struct):
    packets: u64
    bytes: u64


class IPv4Hdr(Struct):
    ver_ihl: u8
    tos: u8
    tot_len: u16
    id: u16
    frag: u16
    ttl: u8
    protocol: u8


class IPv6Hdr(Struct):
    ver_tc_flow: u32
    payload_len: u16
    nexthdr: u8


ETH_HLEN = 14
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
counts = HashMap(u32, Counts, max_entries=1024)


@tc()
def tc_ingress(ctx):
    proto = ntohs(ctx.protocol)
    ipproto = u32(0)
    if proto == ETH_P_IP:
        ip = ctx.load(IPv4Hdr, ETH_HLEN)
        if ip is not None:
            ipproto = ip.protocol
    elif proto == ETH_P_IPV6:
        ip6 = ctx.load(IPv6Hdr, ETH_HLEN)
        if ip6 is not None:
            ipproto = ip6.nexthdr
    key = u32(proto << 8 | ipproto)
    c = counts.get(key)
    if c is None:
        counts[key] = Counts()
        c = counts.get(key)
        if c is None:
            return TC_ACT_OK            # the map is full
    c.packets += 1
    c.bytes += ctx.len
    return TC_ACT_OK


ETHER_TYPES = {0x0800: "IPv4", 0x86DD: "IPv6", 0x0806: "ARP", 0x8100: "VLAN",
               0x88A8: "QinQ", 0x8847: "MPLS", 0x88CC: "LLDP", 0x8035: "RARP"}
IP_PROTOCOLS = {1: "ICMP", 2: "IGMP", 6: "TCP", 17: "UDP", 41: "IPv6", 47: "GRE",
                50: "ESP", 58: "ICMPv6", 132: "SCTP", 136: "UDPLite", 0: "HOPOPT"}


def protocol_name(key: int) -> str:
    """``IPv4/UDP`` for key 0x080011, ``ARP`` for 0x080600, ``0x88b5`` for an unknown
    Ethernet type."""
    eth, ip = key >> 8, key & 0xFF
    name = ETHER_TYPES.get(eth, f"0x{eth:04x}")
    if eth in (ETH_P_IP, ETH_P_IPV6):
        name += "/" + IP_PROTOCOLS.get(ip, str(ip))
    return name


HEADER = f"{'PROTOCOL':<16} {'PACKETS':>10} {'BYTES':>12}"


class Summary:
    """Prints the counts added since the previous summary (all of them with
    ``cumulative``), by protocol, most bytes first."""

    def __init__(self, mod, args) -> None:
        self.mod, self.args = mod, args
        self.before = {}

    def __call__(self) -> None:
        now = {int(k): (int(v.packets), int(v.bytes)) for k, v in self.mod["counts"].items()}
        rows = []
        for key, (packets, nbytes) in now.items():
            old = (0, 0) if self.args.cumulative else self.before.get(key, (0, 0))
            if packets - old[0]:
                rows.append((protocol_name(key), packets - old[0], nbytes - old[1]))
        self.before = now
        print()
        if self.args.timestamp:
            print(time.strftime("%H:%M:%S"))
        print(HEADER)
        for name, packets, nbytes in sorted(rows, key=lambda r: (-r[2], r[0])):
            print(f"{name:<16} {packets:>10} {nbytes:>12}")
        if len(rows) > 1:
            print(f"{'total':<16} {sum(r[1] for r in rows):>10} {sum(r[2] for r in rows):>12}")


def interface_arg(text: str) -> str:
    """argparse type for -i: the name of a network interface in /sys/class/net (at most
    15 characters, the kernel's IFNAMSIZ less its NUL)."""
    if len(text) > 15:
        raise argparse.ArgumentTypeError(
            f"{text!r} is too long: an interface name is 1..15 characters (IFNAMSIZ)")
    if not text or "/" in text or text in (".", "..") \
            or not os.path.exists(f"/sys/class/net/{text}/ifindex"):
        raise argparse.ArgumentTypeError(
            f"no such interface: {text!r} (not in /sys/class/net; ip link lists them)")
    return text


def main(argv=None) -> int:
    parser = ToolParser("tcpktcount", "Count packets and bytes by protocol at an "
                        "interface's tc ingress hook", examples=[
                            "tcpktcount -i eth0          # counts by protocol at Ctrl-C",
                            "tcpktcount -i eth0 1 5      # every second, 5 times",
                            "tcpktcount -i eth0 -CT 10   # totals every 10 s, with time",
                        ])
    parser.add_argument("-i", "--interface", required=True, type=interface_arg,
                        help="the network interface to count on")
    parser.add_argument("-T", "--timestamp", action="store_true",
                        help="include timestamp on output")
    parser.add_argument("-C", "--cumulative", action="store_true",
                        help="print totals since the start, not per interval")
    parser.add_argument("--mode", choices=("auto", "tcx", "netlink"), default="auto",
                        help="how to attach: a TCX link (kernel 6.6), a clsact qdisc "
                        "filter, or the first that works (default)")
    add_interval_args(parser)
    args = parser.parse_args(argv)

    from pybpf.link import attach_tc
    with load_tool(__name__) as mod:
        mod.links["tc_ingress"] = attach_tc(mod.programs["tc_ingress"], args.interface,
                                            "ingress", mode=args.mode)
        run_tool(mod, interval=args.interval, count=args.count, summary=Summary(mod, args),
                 header=f"Counting ingress packets on {args.interface}... "
                        "Hit Ctrl-C to end.")
    return 0


if __name__ == "__main__":
    tool_main(main)
