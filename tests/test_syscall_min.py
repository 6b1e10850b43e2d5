"""The minimal ctypes bpf() layer: layouts, maps, program loads, test runs, no fd leaks."""

from __future__ import annotations

import errno
import os

import pytest

from pybpf.asm import encode
from pybpf.asm.ubpf_asm import assemble as _assemble
from pybpf.syscall import (
    FD, BPFError, BPFPermissionError, MapType, ProgType, VerifierError, map_create,
    prog_load, prog_test_run, syscall_number,
)
from pybpf.syscall.maps import map_lookup_elem as map_lookup
from pybpf.syscall.maps import map_update_elem as map_update
from pybpf.syscall.errors import bpf_error


def assemble(text: str) -> bytes:
    """uBPF text to the bytes the syscall layer takes."""
    return encode(_assemble(text))


from bpfenv import needs_bpf


def _open_fds() -> set:
    return set(os.listdir("/proc/self/fd"))


# -- no kernel needed --------------------------------------------------------------------

# Structure layouts are checked against <linux/bpf.h> by tests/test_uapi_layout.py.


def test_syscall_numbers() -> None:
    assert syscall_number("bpf", "x86_64") == 321
    assert syscall_number("perf_event_open", "x86_64") == 298
    assert syscall_number("bpf", "aarch64") == 280
    assert syscall_number("perf_event_open", "arm64") == 241
    with pytest.raises(OSError) as info:
        syscall_number("bpf", "vax")
    assert info.value.errno == errno.ENOSYS and "vax" in str(info.value)


def test_errors_are_oserrors_with_errno_and_hint() -> None:
    exc = bpf_error("BPF_PROG_LOAD", errno.EACCES)
    assert isinstance(exc, OSError) and exc.errno == errno.EACCES
    assert str(exc) == ("BPF_PROG_LOAD: Permission denied [EACCES] (the verifier rejected "
                        "the program)")
    perm = bpf_error("BPF_MAP_CREATE", errno.EPERM)
    assert isinstance(perm, BPFPermissionError) and isinstance(perm, PermissionError)
    assert "CAP_BPF" in perm.hint
    log = "\n".join(f"line {i}" for i in range(100))
    verr = VerifierError(errno.EACCES, log=log)
    text = str(verr)
    assert "line 99" in text and "line 50" not in text and "80 earlier lines" in text
    assert verr.log == log


def test_fd_object() -> None:
    r, w = os.pipe()
    os.close(w)
    fd = FD(r, "pipe")
    assert fd.fileno() == r and not fd.closed
    with fd:
        pass
    assert fd.closed
    fd.close()                       # idempotent
    with pytest.raises(ValueError, match="closed pipe fd"):
        fd.fileno()
    r, w = os.pipe()
    os.close(w)
    keep = FD(r).detach()
    os.fstat(keep)                   # still open: detach gave it away
    os.close(keep)


# -- with the kernel ----------------------------------------------------------------------

@needs_bpf
def test_map_round_trip() -> None:
    with map_create(MapType.HASH, 4, 8, 16, name="pybpf_test") as m:
        key = (7).to_bytes(4, "little")
        assert map_lookup(m, key, 8) is None
        map_update(m, key, (0x1122334455667788).to_bytes(8, "little"))
        assert map_lookup(m, key, 8) == (0x1122334455667788).to_bytes(8, "little")
        map_update(m.fileno(), key, bytes(8))        # plain ints work too
        assert map_lookup(m, key, 8) == bytes(8)
        with pytest.raises(BPFError) as info:
            map_update(m, key, bytes(8), flags=1)     # BPF_NOEXIST on an existing key
        assert info.value.errno == errno.EEXIST and info.value.command == "BPF_MAP_UPDATE_ELEM"
        assert "BPF_NOEXIST" in info.value.hint
    with map_create(MapType.ARRAY, 4, 16, 2) as a:
        assert map_lookup(a, (1).to_bytes(4, "little"), 16) == bytes(16)
        with pytest.raises(BPFError) as info:
            map_update(a, (2).to_bytes(4, "little"), bytes(16))
        assert info.value.errno == errno.E2BIG


@needs_bpf
def test_bad_map_is_a_clear_error() -> None:
    with pytest.raises(BPFError) as info:
        map_create(MapType.ARRAY, 4, 8, 0)            # max_entries 0
    assert info.value.errno == errno.EINVAL and "max_entries" in str(info.value)
    with pytest.raises(ValueError, match="longer than 15"):
        map_create(MapType.ARRAY, 4, 8, 1, name="x" * 16)


@needs_bpf
def test_prog_load_failure_carries_the_verifier_log() -> None:
    before = _open_fds()
    with pytest.raises(VerifierError) as info:
        prog_load(ProgType.XDP, assemble("or %r0, %r10\nexit"))
    exc = info.value
    assert exc.errno == errno.EACCES and exc.command == "BPF_PROG_LOAD"
    assert "R0 !read_ok" in exc.log and "processed" in exc.log
    assert "verifier log:" in str(exc) and "R0 !read_ok" in str(exc)
    # an instruction the kernel does not know: EINVAL, still with a log
    with pytest.raises(VerifierError) as info:
        prog_load(ProgType.XDP, assemble("mov %r0, 0\nlsh %r0, 99\nexit"))
    assert info.value.errno == errno.EINVAL and "invalid shift 99" in info.value.log
    assert _open_fds() == before


@needs_bpf
def test_prog_load_and_test_run() -> None:
    prog = assemble("ldxw %r2, [%r1+4]\nldxw %r1, [%r1]\nsub %r2, %r1\nmov %r0, 2\n"
                    "jge %r2, 14, +1\nmov %r0, 1\nexit")     # XDP_PASS iff >= 14 bytes
    with prog_load(ProgType.XDP, prog, name="pybpf_t") as fd:
        result = prog_test_run(fd, bytes(range(20)), repeat=3)
        assert result.retval == 2
        assert result.data_out == bytes(range(20))
        with pytest.raises(BPFError) as info:
            prog_test_run(fd, b"short")               # XDP needs an Ethernet header
        assert info.value.errno == errno.EINVAL and "14 bytes" in info.value.hint


@needs_bpf
def test_no_fd_leak() -> None:
    before = _open_fds()
    for _ in range(1000):
        with map_create(MapType.ARRAY, 4, 8, 1):
            pass
    for _ in range(200):
        m = map_create(MapType.ARRAY, 4, 8, 1)
        map_update(m, bytes(4), bytes(8))
        m.close()
    for _ in range(50):
        with pytest.raises(VerifierError):
            prog_load(ProgType.XDP, assemble("exit"))     # r0 not set
        prog_load(ProgType.XDP, assemble("mov %r0, 2\nexit")).close()
    assert _open_fds() == before
