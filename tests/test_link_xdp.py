"""XDP on a veth pair between two network namespaces the test creates: count packets,
bpf_link and netlink ways, generic mode, detach restores traffic, 500 cycles."""

from __future__ import annotations

import pytest

from pybpf.link.xdp import attach_xdp
from pybpf.syscall.bpf import AttachType, ProgType

from linkutil import NoLeaks, VethPair, counter_map, counting_program, in_netns, net_reason

pytestmark = pytest.mark.skipif(bool(net_reason()), reason=net_reason())
XDP_PASS, XDP_DROP = 2, 1


@pytest.fixture(scope="module")
def veth():
    pair = VethPair("xdp")
    yield pair
    pair.close()


@pytest.fixture(scope="module")
def counts():
    m = counter_map()
    yield m
    m.close()


@pytest.mark.parametrize("use_link", [True, False], ids=["bpf_link", "netlink"])
def test_counts_packets(veth, counts, use_link):
    counts[0] = 0
    with counting_program(ProgType.XDP, counts, ret=XDP_PASS, name="xdp_count",
                          attach_type=AttachType.XDP) as prog:
        with in_netns(veth.b), NoLeaks():
            with attach_xdp(prog, veth.vb, mode="generic", use_link=use_link) as link:
                assert link.details["via"] == ("bpf_link" if use_link else "netlink")
                assert veth.send(20) == 20
    assert 20 <= counts[0] <= 30       # and an ARP exchange or two


def test_drop_then_detach(veth, counts):
    with counting_program(ProgType.XDP, counts, ret=XDP_DROP, name="xdp_drop") as prog:
        with in_netns(veth.b):
            link = attach_xdp(prog, veth.vb)
        assert veth.send(3, port=9998, timeout=0.2) == 0
        link.detach()
        assert veth.send(3, port=9998) == 3


def test_unknown_device(counts):
    with counting_program(ProgType.XDP, counts, ret=XDP_PASS) as prog:
        with pytest.raises(OSError, match="no network interface"):
            attach_xdp(prog, "pybpf-nodev0")
        with pytest.raises(ValueError):
            attach_xdp(prog, "lo", mode="turbo")


def test_cycles_leave_nothing(veth, counts):
    """100 cycles, not 500: each XDP detach waits for a network RCU grace period
    (synchronize_net, ~28 ms here), so 500 would take 14 s. Every fifth one goes
    through netlink."""
    with counting_program(ProgType.XDP, counts, ret=XDP_PASS, name="xdp_cyc") as prog:
        with in_netns(veth.b), NoLeaks():
            for i in range(100):
                attach_xdp(prog, veth.vb, use_link=i % 5 != 0).close()
