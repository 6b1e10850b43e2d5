"""pybpf.program and pybpf.syscall.progs against the running kernel.

Loads, test runs, map references, verifier errors mapped back to source lines, log
growth, pinning, info/xlated, links, BTF, and descriptor hygiene. Every test needs root
and a usable bpf(); the error-path tests that fake an old kernel use monkeypatch.
"""

from __future__ import annotations

import errno
import gc
import os
import struct
import sys
import warnings

import pytest

from pybpf.asm import R0, R1, R2, R10, Instruction, decode
from pybpf.asm.assembler import assemble
from pybpf.asm.builder import (
    Builder, add, call, exit_, jge, ld_map_fd, ld_map_value, ldx, mov, st, stx,
)
from pybpf.program import Program, ProgramSpec, RunResult, VerifierError, parse_verifier_log
from pybpf.syscall import errors as syserrors
from pybpf.syscall import progs
from pybpf.syscall.bpf import AttachType, LinkType, MapType, ProgType
from pybpf.syscall.errors import BPFPermissionError, NotSupportedError


from bpfenv import needs_bpf

pytestmark = needs_bpf

XDP_PASS = 2


def _fds() -> set:
    return set(os.listdir("/proc/self/fd"))


def _ret(value: int) -> list:
    return [mov(R0, value), exit_()]


def _hash_map(value_size: int = 8, name: str = ""):
    from pybpf.syscall.maps import map_create
    return map_create(MapType.HASH, 4, value_size, 4, name=name)


def _array_map(value_size: int = 8):
    from pybpf.syscall.maps import map_create
    return map_create(MapType.ARRAY, 4, value_size, 1)


# -- loading and running ---------------------------------------------------------------

def test_xdp_load_and_test_run() -> None:
    text = ("r2 = *(u32 *)(r1 + 4)\nr1 = *(u32 *)(r1 + 0)\nr2 -= r1\nr0 = 2\n"
            "if r2 >= 20 goto +1\nr0 = 1\nexit\n")       # XDP_PASS iff >= 20 bytes
    spec = ProgramSpec(ProgType.XDP, assemble(text, file="xdp_len.s"), name="xdp_len")
    with spec.load() as prog:
        assert isinstance(prog, Program) and not prog.closed
        result = prog.test_run(bytes(range(32)), repeat=5)
        assert isinstance(result, RunResult)
        assert result.retval == XDP_PASS and result.data == bytes(range(32))
        assert result.duration >= 0
        assert prog.test_run(bytes(16)).retval == 1
    assert prog.closed


def test_socket_filter_load_and_test_run() -> None:
    # return the first byte of the packet: socket filters return how much to keep
    b = Builder()
    b.emit(mov(R0, 0), ldx(4, R2, R1, 0))            # skb->len
    b.emit(jge(R2, 1, "ok"), exit_())
    b.label("ok").emit(mov(R0, 0x55), exit_())
    with ProgramSpec(ProgType.SOCKET_FILTER, b.link(), name="sk_len").load() as prog:
        assert prog.test_run(bytes(64)).retval == 0x55


def test_raw_tracepoint_test_run_with_a_context() -> None:
    text = "r0 = *(u64 *)(r1 + 8)\nexit\n"
    with ProgramSpec(ProgType.RAW_TRACEPOINT, assemble(text), name="rawtp_ctx").load() as p:
        out = p.test_run(ctx=struct.pack("<QQ", 7, 42))
        assert out.retval == 42


def test_map_references_are_resolved_at_load() -> None:
    from pybpf.syscall.maps import map_lookup_elem
    with _hash_map(name="by_name") as by_name, _array_map() as by_object:
        b = Builder()
        b.emit(st(4, R10, -4, 7))                      # key 7
        b.emit(mov(R2, R10), add(R2, -4))
        b.emit(ld_map_fd(R1, "counters"))              # by name, from maps=
        b.emit(mov(R0, 0))
        b.emit(st(8, R10, -16, 0x1234))
        b.emit(mov(3, R10), add(3, -16), mov(4, 0))
        b.emit(call("map_update_elem"))
        b.emit(ld_map_value(R1, by_object, 0))         # by object: direct value access
        b.emit(mov(R2, 99), stx(8, R1, 0, R2))
        b.emit(mov(R0, XDP_PASS), exit_())
        spec = ProgramSpec(ProgType.XDP, b.link(), name="maprefs")
        with spec.load(maps={"counters": by_name}) as prog:
            assert prog.test_run(bytes(14)).retval == XDP_PASS
            info = prog.info()
            from pybpf.syscall.objects import map_info
            assert set(info.map_ids) == {map_info(by_name).id, map_info(by_object).id}
        assert map_lookup_elem(by_name, struct.pack("<I", 7), 8) == struct.pack("<Q", 0x1234)
        assert map_lookup_elem(by_object, bytes(4), 8) == struct.pack("<Q", 99)
        # the spec still holds references, not fds
        assert spec.instructions[3].reference == "counters"
        with pytest.raises(KeyError, match="'counters'"):
            spec.load(maps={})


# -- verifier errors ---------------------------------------------------------------------

def _null_deref_builder() -> Builder:
    b = Builder(record_source=True)
    b.emit(st(4, R10, -4, 0))
    b.emit(mov(R2, R10), add(R2, -4))
    b.emit(ld_map_fd(R1, "m"))
    b.emit(call("map_lookup_elem"))
    b.emit(ldx(8, R0, R0, 0))                           # BAD_LINE: no NULL check
    b.emit(exit_())
    return b


def _line_of(marker: str) -> int:
    with open(__file__, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if marker in line and "_line_of" not in line:
                return n
    raise AssertionError(marker)


def test_verifier_error_names_instruction_and_python_source_line() -> None:
    before = _fds()
    with _hash_map() as m:
        with pytest.raises(VerifierError) as info:
            ProgramSpec(ProgType.XDP, _null_deref_builder().link(), name="nullderef").load(
                maps={"m": m})
    exc = info.value
    assert isinstance(exc, syserrors.VerifierError) and exc.errno == errno.EACCES
    assert exc.failing_index == 6                      # lddw takes two slots
    assert exc.failing_instruction is not None
    assert exc.source is not None and exc.source.line == _line_of("BAD_LINE")
    text = str(exc)
    assert "at instruction 6: r0 = *(u64 *)(r0 + 0x0)" in text
    assert f"{__file__}:{_line_of('BAD_LINE')}: b.emit(ldx(8, R0, R0, 0))" in text
    assert "map_value_or_null" in exc.complaint and "verifier: R0 invalid mem" in text
    annotated = exc.annotated_log()
    assert f"{__file__}:{_line_of('BAD_LINE')}" in annotated
    assert "processed" in exc.log
    assert _fds() == before


def test_verifier_error_maps_assembly_lines() -> None:
    text = "r0 = 0\nr1 = 1\nr0 += r3\nexit\n"             # r3 is never set
    with pytest.raises(VerifierError) as info:
        ProgramSpec(ProgType.SOCKET_FILTER, assemble(text, file="bad.s")).load()
    exc = info.value
    assert exc.failing_index == 2
    assert "R3 !read_ok" in exc.complaint
    assert "at instruction 2: r0 += r3" in str(exc)
    assert "bad.s:3: r0 += r3" in str(exc)
    assert "bad.s:3: r0 += r3" in exc.annotated_log()


def test_early_verifier_errors_name_the_instruction() -> None:
    # a jump out of the program is refused before any instruction is walked
    with pytest.raises(VerifierError) as info:
        ProgramSpec(ProgType.SOCKET_FILTER,
                    [mov(R0, 0), Instruction(0x05, off=5), exit_()]).load()
    assert info.value.failing_index == 1
    assert "jump out of range" in info.value.log


def test_parse_verifier_log() -> None:
    log = ("func#0 @0\n0: R1=ctx() R10=fp0\n0: (b7) r0 = 0                ; R0_w=0\n"
           "12: (85) call bpf_map_lookup_elem#1\nR1 type=scalar expected=map_ptr\n"
           "processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 0\n")
    entries, failing, complaint = parse_verifier_log(log)
    assert [(e.index, e.opcode, e.text) for e in entries] == [
        (0, 0xb7, "r0 = 0"), (12, 0x85, "call bpf_map_lookup_elem#1")]
    assert failing == 12 and complaint == "R1 type=scalar expected=map_ptr"


def test_log_grows_to_fit_a_long_log(tmp_path) -> None:
    # about 3000 instructions at log level 2: a log far larger than the first buffer
    insns = [mov(R0, 0)] + [add(R0, 1) for _ in range(3000)] + [exit_()]
    spec = ProgramSpec(ProgType.SOCKET_FILTER, insns, name="longlog")
    with spec.load(verifier_log=True, log_level=2, log_size=1024) as prog:
        log = prog.verifier_log
    assert len(log) > 100_000
    assert log.lstrip().startswith(("func#0", "0: R1", "0: (b7)"))      # the head is kept
    assert "3000: (07) r0 += 1" in log and "processed 3002 insns" in log
    # a failure: the exception keeps the head and the tail, the file gets it all
    bad = insns[:-1] + [add(R0, 3), exit_()]
    bad[-2] = Instruction(0x0F, 0, 3)                                  # r0 += r3: unset r3
    path = tmp_path / "verifier.log"
    with pytest.raises(VerifierError) as info:
        ProgramSpec(ProgType.SOCKET_FILTER, bad).load(log_level=2, log_size=1024,
                                                      log_file=str(path))
    exc = info.value
    assert exc.failing_index == 3001 and "R3 !read_ok" in exc.complaint
    whole = path.read_text()
    assert "0: (b7) r0 = 0" in whole and "3001: (0f) r0 += r3" in whole
    assert exc.log_lines == whole.count("\n") > 400
    assert exc.log.count("\n") == 401 and exc.log_dropped == exc.log_lines - 400
    assert exc.log.startswith(whole.split("\n", 1)[0])
    assert exc.log.endswith("\n".join(whole.split("\n")[-201:]))
    assert f"[... {exc.log_dropped} lines left out ...]" in exc.log
    assert f"the whole log ({exc.log_lines} lines) is in {path}" in str(exc)


def test_log_doubles_without_log_true_size() -> None:
    """Error path: kernels before 6.4 do not say how much log they need; the buffer is
    doubled until the log fits (simulated attempt)."""
    import ctypes
    sizes = []
    needed = 3001
    text = b"abcdefghi\n" * 300

    def attempt(log, level):
        sizes.append(len(log))
        ctypes.memmove(log, text, min(len(log) - 1, len(text)))
        if len(log) < needed:
            raise syserrors.BPFError(errno.ENOSPC, command="BPF_PROG_LOAD")
        raise syserrors.BPFError(errno.EACCES, command="BPF_PROG_LOAD")

    with pytest.raises(syserrors.VerifierError) as info:
        progs._with_growing_log(attempt, 1, 1024, errno.EACCES, "BPF_PROG_LOAD")
    assert sizes == [1024, 2048, 4096]
    assert info.value.errno == errno.EACCES and info.value.log == text.decode()
    assert info.value.log_lines == 300 and info.value.log_dropped == 0


# -- other errors --------------------------------------------------------------------------

def test_unknown_program_type_is_not_supported() -> None:
    with pytest.raises(NotSupportedError) as info:
        progs.prog_load(999, b"\xb7" + bytes(7) + b"\x95" + bytes(7))
    assert "program type 999" in str(info.value)


def test_program_type_newer_than_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Error path: a kernel that predates a type answers EINVAL without a log."""
    bpfmod = sys.modules["pybpf.syscall.bpf"]

    def fake_bpf(cmd: int, attr: object, size: object = None) -> int:
        raise syserrors.bpf_error("BPF_PROG_LOAD", errno.EINVAL)

    monkeypatch.setattr(progs, "bpf", fake_bpf)
    monkeypatch.setattr(bpfmod, "_kernel_version", (5, 4, 0))
    with pytest.raises(NotSupportedError) as info:
        progs.prog_load(ProgType.TRACING, b"\xb7" + bytes(7) + b"\x95" + bytes(7))
    assert info.value.min_version == (5, 5)
    assert "program type TRACING" in str(info.value) and "Linux 5.5" in str(info.value)


def test_newer_attribute_field_on_an_older_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """Error path: E2BIG because a field newer than the kernel is set."""
    bpfmod = sys.modules["pybpf.syscall.bpf"]
    monkeypatch.setattr(bpfmod, "_kernel_version", (6, 8, 0))
    attr = progs.ProgLoadAttr(fd_array_cnt=1)
    err = bpfmod._error(5, attr, errno.E2BIG)
    assert isinstance(err, NotSupportedError)
    assert "fd_array_cnt" in str(err) and err.min_version == (6, 13)


def test_permission_error_has_a_hint() -> None:
    spec = ProgramSpec(ProgType.TRACING, _ret(0), attach_type=AttachType.TRACE_FENTRY,
                       attach_btf_id=1)
    try:
        spec.load().close()
    except BPFPermissionError as exc:
        assert isinstance(exc, PermissionError)
        assert "CAP_BPF" in exc.hint and "security policy" in exc.hint
    except OSError as exc:
        pytest.skip(f"this kernel lets root load tracing programs ({exc.errno})")


# -- pinning, info, xlated ---------------------------------------------------------------

@pytest.fixture
def bpffs() -> str:
    from pybpf.maps.bpffs import ensure_bpffs
    try:
        ensure_bpffs()
    except OSError as exc:
        pytest.skip(f"no BPF file system: {exc}")
    return "/sys/fs/bpf"


def test_pin_unpin_round_trip(bpffs: str) -> None:
    path = os.path.join(bpffs, f"pybpf_test_prog_{os.getpid()}")
    with ProgramSpec(ProgType.XDP, _ret(XDP_PASS), name="pinned").load() as prog:
        prog.pin(path)
        try:
            assert os.path.exists(path)
            with Program.from_pin(path) as again:
                assert again.id == prog.id
                assert again.test_run(bytes(14)).retval == XDP_PASS
        finally:
            Program.unpin(path)
    assert not os.path.exists(path)


def test_info_and_xlated() -> None:
    with _hash_map() as m:
        b = Builder()
        b.emit(st(4, R10, -4, 0), mov(R2, R10), add(R2, -4), ld_map_fd(R1, m))
        b.emit(call("map_lookup_elem"), mov(R0, XDP_PASS), exit_())
        with ProgramSpec(ProgType.XDP, b.link(), name="info_t").load() as prog:
            info = prog.info()
            assert info.name == "info_t" and info.type == ProgType.XDP
            assert info.id > 0 and len(info.tag) == 8 and prog.tag == info.tag.hex()
            assert info.xlated_prog_len > 0 and info.load_time > 0
            from pybpf.syscall.objects import map_info
            assert info.map_ids == [map_info(m).id]
            code = prog.xlated()
            assert all(isinstance(i, Instruction) for i in code)
            assert code[0] == st(4, R10, -4, 0)
            assert code[-1] == exit_()
            lddw = code[3]
            assert lddw.opcode == 0x18 and lddw.imm & 0xFFFFFFFF == map_info(m).id
            text = prog.dump()
            assert f"map id {map_info(m).id}" in text and "(95) exit" in text
            with Program.from_id(info.id) as again:
                assert again.info().tag == info.tag


def test_run_time_statistics() -> None:
    with ProgramSpec(ProgType.XDP, _ret(XDP_PASS), name="stats").load() as prog:
        with progs.enable_stats():
            prog.test_run(bytes(14), repeat=10)
            info = prog.info()
        # test runs go through the statistics path while statistics are on
        assert info.run_cnt >= 10 and info.run_time_ns > 0


# -- links and BTF -----------------------------------------------------------------------

def test_raw_tracepoint_link() -> None:
    from pybpf.syscall.objects import link_info
    with ProgramSpec(ProgType.RAW_TRACEPOINT, _ret(0), name="rawtp").load() as prog:
        with progs.raw_tracepoint_open(prog, "sys_enter") as link:
            info = link_info(link)
            assert info.type == LinkType.RAW_TRACEPOINT and info.prog_id == prog.id
            assert info.details["tp_name"] == "sys_enter"
        with pytest.raises(OSError) as err:
            progs.raw_tracepoint_open(prog, "pybpf_no_such_tracepoint")
        assert err.value.errno == errno.ENOENT


def test_cgroup_link_create_and_detach() -> None:
    root = "/sys/fs/cgroup/unified"
    if not os.path.isdir(root):
        root = "/sys/fs/cgroup"
    if not os.path.exists(os.path.join(root, "cgroup.procs")):
        pytest.skip("no cgroup v2 hierarchy")
    path = os.path.join(root, f"pybpf_test_{os.getpid()}")
    os.mkdir(path)
    try:
        cg = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            spec = ProgramSpec(ProgType.CGROUP_SKB, _ret(1), name="cg_ingress",
                               attach_type=AttachType.CGROUP_INET_INGRESS)
            with spec.load() as prog:
                from pybpf.syscall.objects import link_info
                with progs.link_create(prog, AttachType.CGROUP_INET_INGRESS, cg) as link:
                    info = link_info(link)
                    assert info.type == LinkType.CGROUP
                    assert info.details["attach_type"] == AttachType.CGROUP_INET_INGRESS
                    progs.link_detach(link)
        finally:
            os.close(cg)
    finally:
        os.rmdir(path)


def test_btf_load_and_its_log() -> None:
    from pybpf.features import _storage_btf
    with progs.btf_load(_storage_btf()) as fd:
        from pybpf.syscall.objects import btf_info
        assert btf_info(fd).btf_size == len(_storage_btf())
    broken = bytearray(_storage_btf())
    broken[24 + 4:24 + 8] = struct.pack("<I", 99 << 24)   # kind 99 does not exist
    with pytest.raises(syserrors.VerifierError) as info:
        progs.btf_load(bytes(broken))
    assert info.value.command == "BPF_BTF_LOAD" and info.value.log


# -- ownership -----------------------------------------------------------------------------

def test_closed_program_is_a_clear_error() -> None:
    prog = ProgramSpec(ProgType.XDP, _ret(XDP_PASS), name="closed").load()
    prog.close()
    prog.close()
    for use in (prog.fileno, prog.info, prog.xlated, lambda: prog.test_run(bytes(14))):
        with pytest.raises(ValueError, match="closed program 'closed'"):
            use()


def test_finalizer_closes_with_a_resource_warning() -> None:
    before = _fds()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ProgramSpec(ProgType.XDP, _ret(XDP_PASS)).load()
        gc.collect()
    assert any(issubclass(w.category, ResourceWarning) for w in caught)
    assert _fds() == before


def test_no_fd_leak_over_1000_loads() -> None:
    spec = ProgramSpec(ProgType.SOCKET_FILTER, _ret(0), name="leak")
    bad = ProgramSpec(ProgType.SOCKET_FILTER, [exit_()])
    gc.collect()
    before = _fds()
    for _ in range(1000):
        spec.load().close()
    for _ in range(200):
        with spec.load() as prog:
            prog.test_run(bytes(16))
    for _ in range(50):
        with pytest.raises(VerifierError):
            bad.load()
    gc.collect()
    assert _fds() == before


def test_syscall_layer_takes_bytes_only() -> None:
    with pytest.raises(TypeError):
        progs.prog_load(ProgType.XDP, [mov(R0, 0), exit_()])   # type: ignore[arg-type]
    code = ("import sys, pybpf.syscall, pybpf.syscall.progs\n"
            "assert not [m for m in sys.modules if m.startswith('pybpf.asm')], "
            "sorted(sys.modules)\n")
    import subprocess
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    assert decode(b"\xb7" + bytes(7))[0] == mov(R0, 0)


def test_summarize_log_keeps_head_and_tail() -> None:
    """A long log is read in chunks: the first and last lines are kept with a marker
    between them, the whole goes to the file, and an endless line is cut."""
    import tempfile
    lines = [f"{n}: line" for n in range(5000)]
    data = ("\n".join(lines) + "\n").encode() + b"\0" + b"garbage after the NUL"
    with tempfile.NamedTemporaryFile() as fh:
        text, total, dropped = syserrors.summarize_log(bytearray(data), fh.name,
                                                       head=3, tail=2)
        assert open(fh.name, "rb").read() == data[:data.index(b"\0")]
    assert (total, dropped) == (5000, 4995)
    assert text == "0: line\n1: line\n2: line\n[... 4995 lines left out ...]\n" \
                   "4998: line\n4999: line\n"
    long_line = b"y" * (3 << 20)
    text, total, dropped = syserrors.summarize_log(bytearray(long_line + b"\0"))
    assert (total, dropped) == (1, 0)
    assert text == "y" * syserrors.LOG_LINE_BYTES + " ...\n"
