"""tcp: TCP connections opened and accepted, and segments retransmitted, by port.

pybpf_tcp_connects_total{remote_port}, pybpf_tcp_accepts_total{local_port} and
pybpf_tcp_retransmits_total{remote_port}:

``sock:inet_sock_set_state`` reports every TCP state change with the ports in host
byte order: a change to SYN_SENT is a connect() starting (counted by the port it
connects to), a change from SYN_RECV to ESTABLISHED a connection a listener completed
(counted by the listening port). ``tcp:tcp_retransmit_skb`` fires for each segment
the kernel tries to send again (SYNs included); the ones sent (``err`` 0, what
``tcpi_total_retrans`` and ``TcpRetransSegs`` count) are counted by the peer's port.
"""

from pybpf.dsl import HashMap, tracepoint, u32, u64
from pybpf.export import Counter

IPPROTO_TCP = 6
TCP_ESTABLISHED, TCP_SYN_SENT, TCP_SYN_RECV = 1, 2, 3

connects = HashMap(u32, u64, max_entries=8192)      # remote port -> connects started
accepts = HashMap(u32, u64, max_entries=8192)       # local port -> connections accepted
retransmits = HashMap(u32, u64, max_entries=8192)   # remote port -> segments resent


@tracepoint("sock:inet_sock_set_state")
def export_tcpstate(args):
    if args.protocol != IPPROTO_TCP:
        return 0
    if args.newstate == TCP_SYN_SENT:
        connects[u32(args.dport)] += 1
    elif args.newstate == TCP_ESTABLISHED and args.oldstate == TCP_SYN_RECV:
        accepts[u32(args.sport)] += 1
    return 0


@tracepoint("tcp:tcp_retransmit_skb")
def export_retrans(args):
    if args.err != 0:
        return 0                         # not sent (still queued on this host, ...)
    retransmits[u32(args.dport)] += 1
    return 0


METRICS = [
    Counter("pybpf_tcp_connects_total", "TCP connections started (connect()), by the "
            "port connected to.", connects, labels=["remote_port"]),
    Counter("pybpf_tcp_accepts_total", "TCP connections a listener completed, by the "
            "listening port.", accepts, labels=["local_port"]),
    Counter("pybpf_tcp_retransmits_total", "TCP segments retransmitted, by the peer's "
            "port.", retransmits, labels=["remote_port"]),
]
