#!/usr/bin/env python3
"""tcprtt: summarize TCP round-trip times as log2 histograms, like libbpf-tools'
tcprtt (BCC's tcprtt has the same flags).

libbpf-tools reads ``srtt_us >> 3`` (the smoothed RTT, microseconds) from the socket
when ``tcp_rcv_established`` runs (fentry, else a kprobe). Neither is open on every
host (this project's test host refuses both), so this tool traces the ``tcp:tcp_probe``
tracepoint, which fires at the start of that same function with the same value in its
``srtt`` field and both ends already decoded (the tracepoint exists since Linux 4.16;
its ``family`` field, used here, came later: where either is missing the tool stops at
load with an error naming it).

Each received segment of an established connection counts once. -p/-P filter on the
local/remote port, -a/-A on the local/remote address (IPv4 or IPv6, not both: the
16-byte address is kept in an array map the tool fills after loading; until then the
filter matches nothing); -b/-B keep one histogram per local/remote address, -e adds the
average. The counts live in a hash map keyed by (family, address, slot); the slots
past the histogram's (64, 65) hold each key's sum and count for -e.
"""

import argparse
import ipaddress
import time

from pybpf.dsl import ArrayMap, HashMap, Struct, const, log2, tracepoint, u8, u16, u32, u64
from pybpf.events.histogram import Log2Histogram
from pybpf.tooling import (
    ToolParser, load_tool, port_number, run_tool, tool_main, whole_seconds,
)

AF_INET, AF_INET6 = 2, 10
SUM_SLOT, COUNT_SLOT = 64, 65
BY_NONE, BY_LOCAL, BY_REMOTE = 0, 1, 2


class Key(Struct):
    family: u16
    pad: u16
    slot: u32
    addr: u8[16]


class Addr(Struct):
    b: u8[16]


class Ends(Struct):
    local: u8[28]
    remote: u8[28]


hists = HashMap(Key, u64, max_entries=10240)
addrs = ArrayMap(Addr, 2)                    # 0: -a's address, 1: -A's
LPORT = const(u16, 0)
RPORT = const(u16, 0)
FILTER_LADDR = const(u32, 0)      # the family of -a's address (0: no filter)
FILTER_RADDR = const(u32, 0)
BY = const(u32, 0)
MS = const(u32, 0)
EXTENDED = const(u32, 0)


@tracepoint("tcp:tcp_probe")
def tcp_rcv(args):
    if LPORT and args.sport != LPORT:
        return 0
    if RPORT and args.dport != RPORT:
        return 0
    family = args.family
    if family != AF_INET and family != AF_INET6:
        return 0
    # the ends are socket addresses: the IPv4 address at byte 4, the IPv6 one at 8;
    # copied to the stack first (the verifier refuses a variable index into the context)
    ends = Ends()
    ends.local = args.saddr
    ends.remote = args.daddr
    if FILTER_LADDR:
        if family != FILTER_LADDR:
            return 0
        want = addrs.get(0)
        if want is None:
            return 0
        if family == AF_INET:
            for i in range(4):
                if want.b[i] != ends.local[4 + i]:
                    return 0
        else:
            for i in range(16):
                if want.b[i] != ends.local[8 + i]:
                    return 0
    if FILTER_RADDR:
        if family != FILTER_RADDR:
            return 0
        want = addrs.get(1)
        if want is None:
            return 0
        if family == AF_INET:
            for i in range(4):
                if want.b[i] != ends.remote[4 + i]:
                    return 0
        else:
            for i in range(16):
                if want.b[i] != ends.remote[8 + i]:
                    return 0
    srtt = u64(args.srtt)                 # microseconds (the kernel's srtt_us >> 3)
    if MS:
        srtt = srtt // 1000
    k = Key()
    if BY:
        k.family = family
        if family == AF_INET and BY == BY_LOCAL:
            for i in range(4):
                k.addr[i] = ends.local[4 + i]
        elif family == AF_INET:
            for i in range(4):
                k.addr[i] = ends.remote[4 + i]
        elif BY == BY_LOCAL:
            for i in range(16):
                k.addr[i] = ends.local[8 + i]
        else:
            for i in range(16):
                k.addr[i] = ends.remote[8 + i]
    k.slot = log2(srtt)
    hists[k] += 1
    if EXTENDED:
        k.slot = SUM_SLOT
        hists[k] += srtt
        k.slot = COUNT_SLOT
        hists[k] += 1
    return 0


def take_hists(mod) -> dict:
    """{(family, address bytes): (64 slot counts, sum, count)} of the map, then cleared."""
    per: dict = {}
    for k, v in mod["hists"].items():
        slots, total = per.setdefault((k.family, bytes(k.addr)), ([0] * 64, [0, 0]))
        if k.slot < 64:
            slots[k.slot] += int(v)
        elif k.slot == SUM_SLOT:
            total[0] += int(v)
        elif k.slot == COUNT_SLOT:
            total[1] += int(v)
    mod["hists"].clear()
    return {key: (slots, total[0], total[1]) for key, (slots, total) in per.items()}


def address_text(family: int, raw: bytes) -> str:
    """The printable address of a histogram key."""
    if family == AF_INET:
        return str(ipaddress.IPv4Address(raw[:4]))
    return str(ipaddress.IPv6Address(raw[:16]))


def summary_text(per: dict, args) -> str:
    """libbpf-tools' printout: a title line per histogram, then the histogram."""
    units = "msecs" if args.milliseconds else "usecs"
    out = []
    for (family, raw), (slots, total, count) in sorted(per.items()):
        if args.byladdr:
            title = f"Local Address = {address_text(family, raw)} "
        elif args.byraddr:
            title = f"Remote Address = {address_text(family, raw)} "
        else:
            title = "All Addresses = ****** "
        if args.extension:
            title += f"[AVG {total // count if count else 0}]"
        out.append(title + "\n" + Log2Histogram(slots).bcc(units))
    return "".join(out)


def address(text: str) -> ipaddress._BaseAddress:
    """argparse type: an IPv4 or IPv6 address."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IPv4 or IPv6 address") \
            from None


def main(argv=None) -> int:
    parser = ToolParser("tcprtt", "Summarize TCP RTT as a histogram", examples=[
        "./tcprtt            # summarize TCP RTT",
        "./tcprtt -i 1 -d 10 # print 1 second summaries, 10 times",
        "./tcprtt -m -T      # summarize in millisecond, and timestamps",
        "./tcprtt -p 80      # filter for local port",
        "./tcprtt -P 80      # filter for remote port",
        "./tcprtt -a 10.0.0.1  # filter for local address",
        "./tcprtt -A 10.0.0.2  # filter for remote address",
        "./tcprtt -b         # show sockets histogram by local address",
        "./tcprtt -B         # show sockets histogram by remote address",
        "./tcprtt -e         # show extension summary(average)",
    ])
    parser.add_argument("-i", "--interval", type=whole_seconds,
                        help="summary interval, seconds")
    parser.add_argument("-d", "--duration", type=whole_seconds,
                        help="total duration of trace, seconds")
    parser.add_argument("-T", "--timestamp", action="store_true",
                        help="include timestamp on output")
    parser.add_argument("-m", "--millisecond", dest="milliseconds", action="store_true",
                        help="millisecond histogram")
    parser.add_argument("-p", "--lport", type=port_number, default=0,
                        help="filter for local port")
    parser.add_argument("-P", "--rport", type=port_number, default=0,
                        help="filter for remote port")
    parser.add_argument("-a", "--laddr", type=address, help="filter for local address")
    parser.add_argument("-A", "--raddr", type=address, help="filter for remote address")
    by = parser.add_mutually_exclusive_group()
    by.add_argument("-b", "--byladdr", action="store_true",
                    help="show sockets histogram by local address")
    by.add_argument("-B", "--byraddr", action="store_true",
                    help="show sockets histogram by remote address")
    parser.add_argument("-e", "--extension", action="store_true",
                        help="show extension summary(average)")
    args = parser.parse_args(argv)
    if args.laddr and args.raddr and args.laddr.version != args.raddr.version:
        parser.error("It is not permitted to filter by both IPv4 and IPv6")

    def family(a) -> int:
        return 0 if a is None else AF_INET if a.version == 4 else AF_INET6

    consts = {"LPORT": args.lport, "RPORT": args.rport, "FILTER_LADDR": family(args.laddr),
              "FILTER_RADDR": family(args.raddr),
              "BY": BY_LOCAL if args.byladdr else BY_REMOTE if args.byraddr else BY_NONE,
              "MS": int(args.milliseconds), "EXTENDED": int(args.extension)}

    def summary(mod) -> None:
        print()
        if args.timestamp:
            print(f"{time.strftime('%H:%M:%S'):<8}")
        print(summary_text(take_hists(mod), args), end="")

    count = None
    if args.interval and args.duration:
        count = max(1, args.duration // args.interval)
    with load_tool(__name__, consts=consts) as mod:
        for index, a in enumerate((args.laddr, args.raddr)):
            if a is not None:
                mod["addrs"][index] = (tuple(a.packed.ljust(16, b"\0")),)
        banner = "Tracing TCP RTT" + (f" for {args.duration} secs." if args.duration
                                      else "... Hit Ctrl-C to end.")
        run_tool(mod, duration=args.duration, interval=args.interval, count=count,
                 summary=lambda: summary(mod), header=banner)
    return 0


if __name__ == "__main__":
    tool_main(main)
