"""Kprobes and kretprobes: PMU and tracefs (legacy) ways, maxactive, system-call names,
kprobe_multi, distinct errors, leak cycles.

The kernel of the development machines has no kprobes (CONFIG_KPROBES=n): the tests
that need them are marked ``vmtest`` and run in the second-kernel stage
(``scripts/vmtest.sh``: Debian's 6.1 kernel under QEMU); on the host they skip, naming
the missing feature.
"""

from __future__ import annotations

import os
import tempfile

import pytest

from pybpf import features
from pybpf.link.kprobe import (
    BlacklistedFunctionError, KprobesUnavailableError, UnknownFunctionError,
    attach_kprobe, attach_kprobe_multi, attach_kretprobe, kprobes_available,
    syscall_function,
)
from pybpf.syscall.bpf import AttachType, ProgType

from linkutil import NoLeaks, counter_map, counting_program, in_vm, root_reason

NO_KPROBES = root_reason() or kprobes_available()
pytestmark = pytest.mark.skipif(bool(root_reason()), reason=root_reason())


@pytest.fixture(scope="module")
def prog_and_counts():
    counts = counter_map()
    prog = counting_program(ProgType.KPROBE, counts, tgid=os.getpid(), name="kprobe_count")
    yield prog, counts
    prog.close()
    counts.close()


def _unlink_files(n: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        for i in range(n):
            path = os.path.join(d, f"f{i}")
            open(path, "w").close()
            os.unlink(path)


def test_syscall_function_names_this_architecture():
    name = syscall_function("openat")
    assert name.endswith("sys_openat")
    if os.uname().machine == "x86_64" and os.path.exists("/proc/kallsyms"):
        assert name == "__x64_sys_openat"
    with pytest.raises(ValueError):
        syscall_function("openat\np:evil")


@pytest.mark.skipif(not NO_KPROBES, reason="this kernel has kprobes")
def test_clear_error_without_kprobes(prog_and_counts):
    prog, _ = prog_and_counts
    with pytest.raises(KprobesUnavailableError, match="CONFIG_KPROBES=n"):
        attach_kprobe(prog, "do_unlinkat")


@pytest.mark.parametrize("mode", ["pmu", "legacy"])
@pytest.mark.parametrize("retprobe", [False, True], ids=["kprobe", "kretprobe"])
@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_KPROBES), reason=NO_KPROBES)
def test_counts_unlinks(prog_and_counts, mode, retprobe):
    prog, counts = prog_and_counts
    counts[0] = 0
    with NoLeaks():
        with attach_kprobe(prog, "do_unlinkat", retprobe=retprobe, mode=mode) as link:
            assert link.details["mode"] == mode
            assert link.kind == ("kretprobe" if retprobe else "kprobe")
            _unlink_files(25)
    assert counts[0] == 25


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_KPROBES), reason=NO_KPROBES)
def test_maxactive_and_syscall_entry(prog_and_counts):
    prog, counts = prog_and_counts
    counts[0] = 0
    with attach_kretprobe(prog, "do_unlinkat", maxactive=16) as link:
        assert link.details["mode"] == "legacy"
        _unlink_files(5)
    assert counts[0] == 5
    counts[0] = 0
    with attach_kprobe(prog, syscall_function("unlinkat")):
        with tempfile.TemporaryDirectory() as d:
            dfd = os.open(d, os.O_RDONLY)
            for i in range(6):
                open(os.path.join(d, str(i)), "w").close()
                os.unlink(str(i), dir_fd=dfd)             # unlinkat(2)
            os.close(dfd)
    assert counts[0] == 6


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_KPROBES), reason=NO_KPROBES)
def test_distinct_errors(prog_and_counts):
    prog, _ = prog_and_counts
    with NoLeaks():
        for mode in ("pmu", "legacy"):
            with pytest.raises(UnknownFunctionError, match="do_unlinkat"):
                attach_kprobe(prog, "do_unlinkatt", mode=mode)
        with pytest.raises(ValueError):
            attach_kprobe(prog, "do_unlinkat p:x")
        with pytest.raises(ValueError):
            attach_kprobe(prog, "do_unlinkat\n-:kprobes/x")
        blacklisted = _a_blacklisted_function()
        if blacklisted:
            with pytest.raises(BlacklistedFunctionError):
                attach_kprobe(prog, blacklisted, mode="pmu")


def _a_blacklisted_function():
    try:
        with open("/sys/kernel/debug/kprobes/blacklist") as fh:
            for line in fh:
                name = line.split()[-1]
                if not name.startswith("_") and "." not in name and "[" not in line:
                    return name
    except OSError:
        return None
    return None


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_KPROBES), reason=NO_KPROBES)
def test_cycles_leave_nothing(prog_and_counts):
    """Fewer than 500 cycles: in the emulated guest each kprobe registration and removal
    takes tens of milliseconds (a grace period, text patching); natively this kernel has
    no kprobes. 60 PMU cycles and 30 tracefs cycles, every one checked."""
    prog, counts = prog_and_counts
    counts[0] = 0
    n_pmu, n_legacy = (60, 30) if in_vm() else (500, 100)
    with NoLeaks():
        for i in range(n_pmu):
            with attach_kprobe(prog, "do_unlinkat", use_link=bool(i % 2)):
                _unlink_files(1)
        for _ in range(n_legacy):
            attach_kretprobe(prog, "do_unlinkat", mode="legacy").close()
    assert counts[0] == n_pmu


NO_MULTI = NO_KPROBES or (
    "" if features.probe(features.feature("misc.kprobe_multi")) else
    "kprobe_multi: " + features.probe(features.feature("misc.kprobe_multi")).reason)


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_MULTI), reason=NO_MULTI)
def test_kprobe_multi():
    counts = counter_map()
    prog = counting_program(ProgType.KPROBE, counts, tgid=os.getpid(), name="kmulti",
                            attach_type=AttachType.TRACE_KPROBE_MULTI)
    try:
        with attach_kprobe_multi(prog, ["do_unlinkat", "do_mkdirat"]):
            _unlink_files(4)
            with tempfile.TemporaryDirectory() as d:
                os.mkdir(os.path.join(d, "x"))
        assert counts[0] == 5
        counts[0] = 0
        with attach_kprobe_multi(prog, "do_unlinkat*", retprobe=True) as link:
            assert "do_unlinkat" in link.details["functions"]
            _unlink_files(3)
        assert counts[0] == 3
        with pytest.raises(UnknownFunctionError):
            attach_kprobe_multi(prog, "pybpf_no_such_function_*")
    finally:
        prog.close()
        counts.close()
