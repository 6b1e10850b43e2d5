"""tc on a veth pair between two network namespaces: TCX links and the netlink clsact
fallback, ingress and egress, counting packets, dropping, cleanup of the qdisc, leak
cycles."""

from __future__ import annotations

import subprocess

import pytest

from pybpf import features
from pybpf.link.tc import attach_tc
from pybpf.syscall.bpf import AttachType, ProgType

from linkutil import NoLeaks, VethPair, counter_map, counting_program, in_netns, net_reason

pytestmark = pytest.mark.skipif(bool(net_reason()), reason=net_reason())
TC_ACT_OK, TC_ACT_SHOT = 0, 2
HAVE_TCX = bool(features.probe(features.feature("link.tcx")))


@pytest.fixture(scope="module")
def veth():
    pair = VethPair("tc")
    yield pair
    pair.close()


@pytest.fixture
def counts():
    m = counter_map()
    yield m
    m.close()


def _qdiscs(ns: str, dev: str) -> str:
    return subprocess.run(["ip", "netns", "exec", ns, "tc", "qdisc", "show", "dev", dev],
                          capture_output=True, text=True).stdout


MODES = ["netlink"] + (["tcx"] if HAVE_TCX else [])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_counts_packets(veth, counts, mode, direction):
    ns, dev = (veth.b, veth.vb) if direction == "ingress" else (veth.a, veth.va)
    attach_type = AttachType.TCX_INGRESS if direction == "ingress" else AttachType.TCX_EGRESS
    with counting_program(ProgType.SCHED_CLS, counts, ret=TC_ACT_OK, name="tc_count",
                          attach_type=attach_type) as prog:
        with in_netns(ns), NoLeaks():
            with attach_tc(prog, dev, direction, mode=mode) as link:
                assert link.details["via"] == mode
                assert veth.send(15) == 15
            if mode == "netlink":
                assert "clsact" not in _qdiscs(ns, dev)      # created, then removed
    assert 15 <= counts[0] <= 25


def test_drop_and_existing_qdisc_is_kept(veth, counts):
    subprocess.run(["ip", "netns", "exec", veth.b, "tc", "qdisc", "add", "dev", veth.vb,
                    "clsact"], check=True)
    try:
        with counting_program(ProgType.SCHED_CLS, counts, ret=TC_ACT_SHOT) as prog:
            with in_netns(veth.b):
                link = attach_tc(prog, veth.vb, "ingress", mode="netlink", priority=7)
            assert not link.details["created_qdisc"]
            assert veth.send(2, port=9997, timeout=0.2) == 0
            link.close()
            assert veth.send(2, port=9997) == 2
        assert "clsact" in _qdiscs(veth.b, veth.vb)            # not ours: kept
    finally:
        subprocess.run(["ip", "netns", "exec", veth.b, "tc", "qdisc", "del", "dev",
                        veth.vb, "clsact"])


def test_bad_arguments(counts):
    with counting_program(ProgType.SCHED_CLS, counts) as prog:
        with pytest.raises(ValueError):
            attach_tc(prog, "lo", "sideways")
        with pytest.raises(OSError, match="no network interface"):
            attach_tc(prog, "pybpf-nodev0")


@pytest.mark.parametrize("mode", MODES)
def test_cycles_leave_nothing(veth, counts, mode):
    """100 cycles, not 500: each detach, TCX or netlink (which also creates and deletes
    the clsact qdisc), waits for a network RCU grace period (~27 ms here), so 500 would
    take 14 s per mode."""
    n = 100
    with counting_program(ProgType.SCHED_CLS, counts, name="tc_cyc",
                          attach_type=AttachType.TCX_INGRESS) as prog:
        with in_netns(veth.b), NoLeaks():
            for _ in range(n):
                attach_tc(prog, veth.vb, mode=mode).close()
        assert "clsact" not in _qdiscs(veth.b, veth.vb)
