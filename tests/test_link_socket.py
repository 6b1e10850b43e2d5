"""Socket filters on a UDP socket in a network namespace reached over a veth pair:
count packets, drop them, detach, 500 cycles."""

from __future__ import annotations

import socket

import pytest

from pybpf.link.socket import attach_socket_filter
from pybpf.syscall.bpf import ProgType

from linkutil import NoLeaks, VethPair, counter_map, counting_program, in_netns, net_reason

pytestmark = pytest.mark.skipif(bool(net_reason()), reason=net_reason())


@pytest.fixture(scope="module")
def veth():
    pair = VethPair("sock")
    yield pair
    pair.close()


def test_counts_and_drops(veth):
    counts = counter_map()
    keep = counting_program(ProgType.SOCKET_FILTER, counts, ret=-1, name="sock_keep")
    drop = counting_program(ProgType.SOCKET_FILTER, counts, ret=0, name="sock_drop")
    with in_netns(veth.b):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((veth.ip_b, 9000))
    rx.settimeout(0.5)
    with in_netns(veth.a):
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        with NoLeaks():
            with attach_socket_filter(rx, keep):
                for i in range(12):
                    tx.sendto(b"x%d" % i, (veth.ip_b, 9000))
                    assert rx.recv(10) == b"x%d" % i
            assert counts[0] == 12
            with attach_socket_filter(rx, drop):
                tx.sendto(b"gone", (veth.ip_b, 9000))
                with pytest.raises(socket.timeout):
                    rx.recv(10)
            assert counts[0] == 13
            tx.sendto(b"back", (veth.ip_b, 9000))          # detached: delivered again
            assert rx.recv(10) == b"back"
            assert counts[0] == 13
    finally:
        rx.close()
        tx.close()
        keep.close()
        drop.close()
        counts.close()


def test_500_cycles_leave_nothing():
    counts = counter_map()
    prog = counting_program(ProgType.SOCKET_FILTER, counts, ret=-1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with NoLeaks():
        for _ in range(500):
            attach_socket_filter(s, prog).close()
        attach_socket_filter(s.fileno(), prog).close()      # by fd: a duplicate is held
    s.close()
    prog.close()
    counts.close()
