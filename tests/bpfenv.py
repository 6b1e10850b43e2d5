"""What the kernel tests need, checked once per test session.

``BPF_UNAVAILABLE`` is "" when this process can create BPF objects, else the reason
(not root, or bpf() refused); ``needs_bpf`` is the matching skip marker.
"""

from __future__ import annotations

import os
import shutil

import pytest


def _why_bpf_unavailable() -> str:
    if os.geteuid() != 0:
        return "needs root (CAP_BPF) to create BPF objects"
    try:
        from pybpf.syscall.bpf import MapType
        from pybpf.syscall.maps import map_create
        map_create(MapType.ARRAY, 4, 4, 1).close()
    except OSError as exc:
        return f"bpf() is not usable here: {exc}"
    return ""


BPF_UNAVAILABLE = _why_bpf_unavailable()
needs_bpf = pytest.mark.skipif(bool(BPF_UNAVAILABLE), reason=BPF_UNAVAILABLE)

BPFTOOL = shutil.which("bpftool")
needs_bpftool = pytest.mark.skipif(BPFTOOL is None, reason="bpftool is not installed "
                                   "(Debian package bpftool, installed by .ci/run)")


def refused_here(prog_type: int, what: str) -> str:
    """The skip reason when this machine refuses ``prog_type`` programs by policy (EPERM
    with every capability held: :attr:`pybpf.features.Support.RESTRICTED`), else "".
    A kernel that lacks the type ("no") or a probe that cannot tell gets "", so the test
    runs and fails where the feature should work and does not."""
    if BPF_UNAVAILABLE:
        return BPF_UNAVAILABLE
    from pybpf import features
    from pybpf.syscall.bpf import ProgType
    result = features.probe(features.prog_type_feature(prog_type))
    if result.restricted:
        return (f"{what}: BPF_PROG_TYPE_{ProgType(prog_type).name} programs are not "
                f"permitted on this machine ({result.reason}); the second-kernel stage "
                f"(scripts/vmtest.sh) runs this test")
    return ""
