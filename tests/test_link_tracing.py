"""fentry, fexit, fmod_ret, tp_btf and LSM programs: count hits of a workload the test
runs, a cookie, overriding a return value, denying an operation with LSM, bad targets,
leak cycles.

On the development machines loading BPF_PROG_TYPE_TRACING/LSM programs fails with EPERM
(a restriction of those machines), so these tests are marked ``vmtest``: they run in
the second-kernel stage (Debian's 6.1 kernel under QEMU) and skip where
:mod:`pybpf.features` says the machine refuses the type, naming why. A kernel that
lacks the type fails them.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from pybpf.asm import R0, R1, R2, R6, R7, R10
from pybpf.asm.builder import (
    DW, W, Label, add, atomic_add, build, call, exit_, jeq, jne, ld_map_fd, mov, rsh, stx,
)
from pybpf.link.tracing import attach_tracing, load_tracing
from pybpf.syscall.bpf import ProgType

from bpfenv import refused_here
from linkutil import NoLeaks, count_insns, counter_map, in_vm


NO_TRACING = refused_here(ProgType.TRACING, "fentry/fexit/fmod_ret/tp_btf")
NO_LSM = refused_here(ProgType.LSM, "LSM")


def _unlink_files(n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        for i in range(n):
            path = os.path.join(d, f"f{i}")
            open(path, "w").close()
            os.unlink(path)


@pytest.fixture
def counts():
    m = counter_map(2)
    yield m
    m.close()


@pytest.mark.parametrize("kind", ["fentry", "fexit"])
@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_TRACING), reason=NO_TRACING)
def test_fentry_fexit_count_unlinks(counts, kind):
    insns = count_insns(counts, tgid=os.getpid())
    with load_tracing(kind, "do_unlinkat", insns, name=f"{kind}_count") as prog:
        with NoLeaks():
            with attach_tracing(prog) as link:
                assert link.kind == kind and link.target == "do_unlinkat"
                _unlink_files(17)
    assert counts[0] == 17


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_TRACING), reason=NO_TRACING)
def test_fentry_cookie(counts):
    """counts[0] += bpf_get_attach_cookie(ctx) (Linux 5.19)."""
    insns = build([
        mov(R6, R1),
        call("get_current_pid_tgid"), rsh(R0, 32), jne(R0, os.getpid(), "out"),
        mov(R1, R6), call("get_attach_cookie"), mov(R7, R0),
        mov(R1, 0), stx(W, R10, -4, R1), mov(R2, R10), add(R2, -4),
        ld_map_fd(R1, counts), call("map_lookup_elem"), jeq(R0, 0, "out"),
        atomic_add(DW, R0, 0, R7),
        Label("out"), mov(R0, 0), exit_(),
    ])
    with load_tracing("fentry", "do_unlinkat", insns, name="cookie") as prog:
        with attach_tracing(prog, cookie=1000):
            _unlink_files(3)
    assert counts[0] == 3000


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_TRACING), reason=NO_TRACING)
def test_fmod_ret_overrides_the_return_value(counts, tmp_path):
    """fmod_ret on security_file_open returns -EPERM for this process only."""
    path = tmp_path / "f"
    path.write_text("x")
    insns = count_insns(counts, tgid=os.getpid(), ret=-1)
    with load_tracing("fmod_ret", "security_file_open", insns, name="deny_open") as prog:
        with attach_tracing(prog):
            for _ in range(4):
                with pytest.raises(PermissionError):
                    os.open(path, os.O_RDONLY)
    os.close(os.open(path, os.O_RDONLY))             # detached: allowed again
    assert counts[0] == 4


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_TRACING), reason=NO_TRACING)
def test_tp_btf_counts_syscalls(counts):
    insns = count_insns(counts, tgid=os.getpid())
    with load_tracing("tp_btf", "sys_enter", insns, name="tpbtf") as prog:
        with attach_tracing(prog) as link:
            assert link.kind == "tp_btf"
            for _ in range(50):
                os.getppid()
    assert counts[0] >= 50


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_LSM), reason=NO_LSM)
def test_lsm_counts_and_denies(counts, tmp_path):
    path = tmp_path / "f"
    path.write_text("x")
    allow = count_insns(counts, tgid=os.getpid(), ret=0)
    with load_tracing("lsm", "file_open", allow, name="lsm_count") as prog:
        with attach_tracing(prog) as link:
            assert link.kind == "lsm"
            for _ in range(5):
                os.close(os.open(path, os.O_RDONLY))
    assert counts[0] >= 5
    counts[0] = 0
    deny = count_insns(counts, tgid=os.getpid(), ret=-1)
    with load_tracing("lsm", "file_open", deny, name="lsm_deny") as prog:
        with attach_tracing(prog):
            with pytest.raises(PermissionError):
                os.open(path, os.O_RDONLY)
    os.close(os.open(path, os.O_RDONLY))
    assert counts[0] == 1


def test_unknown_target_is_a_lookup_error(counts):
    """Name resolution happens before any load, so this runs everywhere."""
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("no kernel BTF")
    with pytest.raises(LookupError, match="do_unlinkatt"):
        load_tracing("fentry", "do_unlinkatt", count_insns(counts))
    with pytest.raises(ValueError, match="unknown tracing kind"):
        load_tracing("fentri", "do_unlinkat", count_insns(counts))


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_TRACING), reason=NO_TRACING)
def test_cycles_leave_nothing(counts):
    """In the emulated guest each fentry attach patches kernel text and waits for
    grace periods; 100 cycles there (500 natively)."""
    n = 100 if in_vm() else 500
    insns = count_insns(counts, tgid=os.getpid())
    with load_tracing("fexit", "do_unlinkat", insns, name="cycles") as prog:
        with NoLeaks():
            for _ in range(n):
                attach_tracing(prog).close()
