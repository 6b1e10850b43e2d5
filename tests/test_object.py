"""pybpf.object: clang-built libbpf-style objects (tests/data/objects/*.c, compiled here
with clang-19) read, loaded and run; compared with bpftool's loader; fuzzed."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.object import ObjectError, classify_section, read_object
from pybpf.syscall.bpf import AttachType, MapFlags, MapType, ProgType

from bpfenv import BPFTOOL, needs_bpf, needs_bpftool
from linkutil import NoLeaks

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = os.path.join(HERE, "data", "objects")
CLANG = shutil.which("clang-19")
needs_clang = pytest.mark.skipif(CLANG is None, reason="clang-19 is not installed "
                                 "(Debian package clang-19, installed by .ci/run)")
XDP_DROP, XDP_PASS, XDP_TX = 1, 2, 3


@pytest.fixture(scope="module")
def objects(tmp_path_factory):
    if CLANG is None:
        pytest.skip("clang-19 is not installed")
    out = tmp_path_factory.mktemp("objects")
    built = {}
    for name in ("counter", "subprog", "globals", "ringbuf", "xdp", "core", "core_bad"):
        path = str(out / f"{name}.o")
        subprocess.run([CLANG, "-O2", "-g", "-target", "bpf", "-c",
                        os.path.join(SOURCES, f"{name}.c"), "-o", path], check=True)
        built[name] = path
    return built


# -- section names (no kernel) ------------------------------------------------------------

@pytest.mark.parametrize("name, kind, prog_type, attach_type, target", [
    ("tracepoint/syscalls/sys_enter_openat", "tracepoint", ProgType.TRACEPOINT, None,
     "syscalls/sys_enter_openat"),
    ("tp/sched/sched_switch", "tracepoint", ProgType.TRACEPOINT, None, "sched/sched_switch"),
    ("raw_tracepoint/sys_enter", "raw_tp", ProgType.RAW_TRACEPOINT, None, "sys_enter"),
    ("raw_tp/sys_exit", "raw_tp", ProgType.RAW_TRACEPOINT, None, "sys_exit"),
    ("tp_btf/sched_switch", "tp_btf", ProgType.TRACING, AttachType.TRACE_RAW_TP,
     "sched_switch"),
    ("kprobe/do_unlinkat", "kprobe", ProgType.KPROBE, None, "do_unlinkat"),
    ("kretprobe/do_unlinkat", "kretprobe", ProgType.KPROBE, None, "do_unlinkat"),
    ("uprobe//bin/bash:main", "uprobe", ProgType.KPROBE, None, "/bin/bash:main"),
    ("uretprobe//bin/bash:readline", "uretprobe", ProgType.KPROBE, None,
     "/bin/bash:readline"),
    ("fentry/do_unlinkat", "fentry", ProgType.TRACING, AttachType.TRACE_FENTRY,
     "do_unlinkat"),
    ("fexit/do_unlinkat", "fexit", ProgType.TRACING, AttachType.TRACE_FEXIT, "do_unlinkat"),
    ("lsm/file_open", "lsm", ProgType.LSM, AttachType.LSM_MAC, "file_open"),
    ("iter/task", "iter", ProgType.TRACING, AttachType.TRACE_ITER, "task"),
    ("xdp", "xdp", ProgType.XDP, AttachType.XDP, ""),
    ("tc", "tc", ProgType.SCHED_CLS, None, ""),
    ("socket", "socket", ProgType.SOCKET_FILTER, None, ""),
    ("perf_event", "perf_event", ProgType.PERF_EVENT, None, ""),
    ("syscall", "syscall", ProgType.SYSCALL, None, ""),
])
def test_section_names(name, kind, prog_type, attach_type, target):
    got = classify_section(name)
    assert got is not None
    assert (got.kind, got.prog_type, got.attach_type, got.target) == \
        (kind, prog_type, attach_type, target)


def test_unknown_sections_are_not_programs():
    assert classify_section(".text") is None
    assert classify_section("tracepointx") is None
    assert classify_section("license") is None


# -- reading (no kernel) ------------------------------------------------------------------

@needs_clang
def test_read_counter(objects):
    spec = read_object(objects["counter"])
    assert spec.license == "GPL"
    assert list(spec.programs) == ["count_getppid", "raw_enter"]
    info = spec.program_info["count_getppid"]
    assert info.section == "tracepoint/syscalls/sys_enter_getppid"
    assert spec.programs["count_getppid"].type == ProgType.TRACEPOINT
    counts = spec.maps["counts"]
    assert (counts.type, counts.key_size, counts.value_size, counts.max_entries) == \
        (MapType.HASH, 4, 8, 16)
    refs = [i.reference for i in spec.programs["count_getppid"].instructions
            if i.reference is not None]
    assert refs and set(refs) == {"counts"}


@needs_clang
def test_read_subprograms_linked_after_each_program(objects):
    spec = read_object(objects["subprog"])
    assert list(spec.programs) == ["calls", "calls_again"]
    # calls -> add_triple -> triple; calls_again -> triple only; unused_helper nowhere
    calls = [i for i in spec.programs["calls"].instructions if i.opcode == 0x85 and i.src == 1]
    again = [i for i in spec.programs["calls_again"].instructions
             if i.opcode == 0x85 and i.src == 1]
    assert len(calls) == 2 and len(again) == 1
    for prog in spec.programs.values():
        n = sum(i.slots for i in prog.instructions)
        slot = 0
        for ins in prog.instructions:
            if ins.opcode == 0x85 and ins.src == 1:
                assert 0 <= slot + ins.imm + 1 < n
            slot += ins.slots


@needs_clang
def test_read_globals(objects):
    spec = read_object(objects["globals"])
    assert set(spec.data) == {".data", ".rodata", ".bss", ".data.custom"}
    assert spec.data[".rodata"].readonly and not spec.data[".data"].readonly
    assert spec.data[".rodata"].map_spec.flags & MapFlags.RDONLY_PROG
    assert spec.variables["fixed"].offset == 8
    spec.set_global("multiplier", 5)
    assert spec.data[".rodata"].initial[:4] == struct.pack("<I", 5)
    with pytest.raises(KeyError, match="nope"):
        spec.set_global("nope", 1)
    with pytest.raises(ValueError):
        spec.set_global("multiplier", b"\x01")


def test_not_elf_is_object_error():
    with pytest.raises(ObjectError, match="not an ELF"):
        read_object(b"hello world")
    assert issubclass(ObjectError, ValueError)


def _section_range(data: bytes, name: str):
    import io
    from elftools.elf.elffile import ELFFile
    sec = ELFFile(io.BytesIO(data)).get_section_by_name(name)
    return sec["sh_offset"], sec["sh_offset"] + sec["sh_size"]


@needs_clang
def test_error_names_the_relocation_symbol(objects):
    data = bytearray(open(objects["counter"], "rb").read())
    start, end = _section_range(bytes(data), ".strtab")
    at = data.find(b"counts\0", start, end)
    assert at != -1
    data[at:at + 6] = b"cOunts"                     # the symbol, not the BTF name
    with pytest.raises(ObjectError, match=r"relocation .*'cOunts'.*no map named"):
        read_object(bytes(data))


@needs_clang
def test_error_names_the_section(objects):
    import io
    from elftools.elf.elffile import ELFFile
    data = open(objects["counter"], "rb").read()
    with pytest.raises(ObjectError):
        read_object(data[:len(data) // 2])
    # misalign the first relocation of the tracepoint program
    elf = ELFFile(io.BytesIO(data))
    rel = elf.get_section_by_name(".reltracepoint/syscalls/sys_enter_getppid")
    assert rel is not None
    raw = bytearray(data)
    at = rel["sh_offset"]
    struct.pack_into("<Q", raw, at, struct.unpack_from("<Q", raw, at)[0] + 4)
    with pytest.raises(ObjectError, match=r"relocation 0 of '\.reltracepoint/syscalls/"
                       r"sys_enter_getppid'.*counts.*not instruction-aligned"):
        read_object(bytes(raw))


# -- loading and running ------------------------------------------------------------------

@needs_bpf
@needs_clang
def test_tracepoint_counts_into_btf_map(objects):
    spec = read_object(objects["counter"])
    with NoLeaks():
        with spec.load() as coll:
            attached, skipped = coll.attach_all()
            assert attached == ["count_getppid", "raw_enter"] and skipped == []
            for _ in range(3):
                os.getppid()
            counts = coll.maps["counts"]
            mine = struct.pack("<I", os.getpid())
            assert struct.unpack("<Q", counts[mine])[0] >= 3
            assert struct.unpack("<Q", counts[b"\xff" * 4])[0] >= 3   # raw_tp: all syscalls


@needs_bpf
@needs_clang
def test_subprogram_calls_run(objects):
    with NoLeaks():
        with read_object(objects["subprog"]).load() as coll:
            assert coll.programs["calls"].test_run(bytes(14)).retval == XDP_PASS
            assert coll.programs["calls"].test_run(bytes(20)).retval == XDP_DROP
            assert coll.programs["calls_again"].test_run(bytes(14)).retval == XDP_TX
            assert coll.attach_all() == ([], ["calls", "calls_again"])


@needs_bpf
@needs_clang
def test_global_data_read_back(objects):
    spec = read_object(objects["globals"])
    spec.set_global("multiplier", 5)
    with NoLeaks():
        with spec.load() as coll:
            prog = coll.programs["globals_prog"]
            for _ in range(2):
                assert prog.test_run(bytes(14)).retval == XDP_PASS
            maps = coll.maps
            assert struct.unpack("<Q", maps[".data"][0])[0] == 40 + 2 * 5
            assert struct.unpack("<Q", maps[".bss"][0])[0] == 2
            assert struct.unpack("<I", maps[".data.custom"][0])[0] == 7 + 2
            assert maps[".rodata"].frozen
            assert struct.unpack("<IxxxxQ", maps[".rodata"][0]) == (5, 0x1122334455667788)


@needs_bpf
@needs_clang
def test_ring_buffer_output(objects):
    from pybpf.events.ringbuf import RingBufReader
    with NoLeaks():
        with read_object(objects["ringbuf"]).load() as coll:
            with RingBufReader(coll.maps["events"], record="<II") as reader:
                assert coll.programs["emit"].test_run(bytes(14)).retval == XDP_PASS
                records = reader.read(timeout=1.0)
            assert len(records) == 1
            assert records[0][1] == 0xFEEDBEEF


@needs_bpf
@needs_clang
def test_xdp_test_run(objects):
    with NoLeaks():
        with read_object(objects["xdp"]).load() as coll:
            prog = coll.programs["xdp_len"]
            assert prog.test_run(bytes(14)).retval == XDP_PASS
            assert prog.test_run(b"\xff" + bytes(13)).retval == XDP_DROP


@needs_bpf
@needs_clang
def test_load_failure_closes_everything(objects):
    spec = read_object(objects["counter"])
    spec.programs["count_getppid"].instructions = \
        list(spec.programs["count_getppid"].instructions)[:-1]     # no exit: refused
    with NoLeaks():
        with pytest.raises(Exception):
            spec.load()


# -- CO-RE --------------------------------------------------------------------------------

def _kernel_btf_reason() -> str:
    return "" if os.path.exists("/sys/kernel/btf/vmlinux") else "no kernel BTF"


needs_kernel_btf = pytest.mark.skipif(bool(_kernel_btf_reason()), reason="no kernel BTF")


@needs_kernel_btf
@needs_clang
def test_core_offsets_follow_the_kernel(objects):
    from pybpf.btf import offsetof, vmlinux
    spec = read_object(objects["core"])
    insns = spec.programs["read_task"].instructions
    # the local struct puts pid at 4; the relocated program uses the kernel's offset
    kernel_pid = offsetof(vmlinux(), "task_struct", "pid")
    assert kernel_pid != 4
    assert any(i.imm == kernel_pid and i.opcode in (0x07, 0xb7) for i in insns)


@needs_bpf
@needs_kernel_btf
@needs_clang
def test_core_reads_task_struct(objects):
    import threading
    spec = read_object(objects["core"])
    spec.set_global("target_tgid", os.getpid())
    with NoLeaks():
        with spec.load() as coll:
            assert coll.attach_all() == (["read_task"], [])
            os.getppid()
            pid, tgid, ptgid, calls = struct.unpack("<4i", coll.maps[".bss"][0][:16])
            has_missing = struct.unpack("<i", coll.maps[".data"][0][:4])[0]
    assert calls >= 1
    assert pid == threading.get_native_id() and tgid == os.getpid()
    assert ptgid == os.getppid()
    assert has_missing == 0


@needs_kernel_btf
@needs_clang
def test_core_unsatisfiable_names_the_relocation(objects):
    with pytest.raises(ObjectError, match=r"CO-RE relocation #0 \(field_byte_offset of "
                       r"'task_struct', access '0:0'\) at instruction \d+ of section "
                       r"'raw_tp/sys_enter': no matching field"):
        read_object(objects["core_bad"])


# -- bpftool as the reference loader ------------------------------------------------------

def _bpftool_loadall(obj: str):
    pin = f"/sys/fs/bpf/pybpf_object_test_{uuid.uuid4().hex[:8]}"
    subprocess.run([BPFTOOL, "prog", "loadall", obj, pin], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return pin


@needs_bpf
@needs_bpftool
@needs_clang
@pytest.mark.parametrize("name", ["xdp", "subprog", "globals", "counter", "ringbuf",
                                  "core"])
def test_same_program_as_bpftool(objects, name):
    """bpftool (libbpf) and pybpf load the same instructions (the kernel's tag ignores
    map fds) and, for XDP, the programs return the same verdicts."""
    from pybpf.program import Program
    pin = _bpftool_loadall(objects[name])
    try:
        with read_object(objects[name]).load() as coll:
            for prog_name, prog in coll.programs.items():
                path = os.path.join(pin, prog_name)
                theirs = Program.from_pin(path)
                try:
                    assert theirs.tag == prog.tag, prog_name
                    if coll.spec.program_info[prog_name].kind.kind == "xdp":
                        for data in (bytes(14), b"\xff" + bytes(19)):
                            assert theirs.test_run(data).retval == \
                                prog.test_run(data).retval
                finally:
                    theirs.close()
    finally:
        shutil.rmtree(pin, ignore_errors=True)


# -- fuzz ---------------------------------------------------------------------------------

_FUZZ_BASE = {}


def _base(objects, name):
    if name not in _FUZZ_BASE:
        _FUZZ_BASE[name] = open(objects[name], "rb").read()
    return _FUZZ_BASE[name]


@needs_clang
@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture,
                                 HealthCheck.too_slow])
@given(name=st.sampled_from(["subprog", "counter", "globals", "core"]),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzz_only_object_error(objects, name, edits):
    data = bytearray(_base(objects, name))
    for where, value in edits:
        data[int(where * len(data))] = value
    from pybpf.object import disasm_object
    for reader in (read_object, disasm_object):
        try:
            reader(bytes(data))
        except ObjectError:
            pass


# -- objects generated per test: a uprobe on this machine's libc, legacy maps -------------

def _libc_path() -> str:
    with open("/proc/self/maps") as fh:
        for line in fh:
            path = line.split()[-1]
            if "/libc.so" in path or "/libc-" in path:
                return os.path.realpath(path)
    return ""


_UPROBE_C = r'''
#include "pybpf_test.h"
struct {
    __uint(type, MAP_HASH);
    __uint(max_entries, 64);
    __type(key, u32);
    __type(value, u64);
} calls SEC(".maps");

SEC("uprobe/%(libc)s:getpid")
int on_getpid(void *ctx)
{
    u32 key = pid_tgid() >> 32;
    u64 one = 1, *val = map_lookup(&calls, &key);
    if (val)
        __sync_fetch_and_add(val, 1);
    else
        map_update(&calls, &key, &one, ANY);
    return 0;
}
char LICENSE[] SEC("license") = "GPL";
'''

_LEGACY_C = r'''
#include "pybpf_test.h"
struct map_def { u32 type, key_size, value_size, max_entries, map_flags; };
struct map_def SEC("maps") legacy = {MAP_ARRAY, 4, 8, 4, 0};

SEC("xdp")
int bump(struct xdp_md *ctx)
{
    u32 key = 1;
    u64 *val = map_lookup(&legacy, &key);
    if (val)
        *val += 5;
    return 2;
}
char LICENSE[] SEC("license") = "GPL";
'''


def _compile(tmp_path, name: str, source: str) -> str:
    c = tmp_path / f"{name}.c"
    c.write_text(source)
    out = str(tmp_path / f"{name}.o")
    subprocess.run([CLANG, "-O2", "-g", "-target", "bpf", "-I", SOURCES, "-c", str(c),
                    "-o", out], check=True)
    return out


@needs_bpf
@needs_clang
@pytest.mark.skipif(not _libc_path(), reason="libc not found in /proc/self/maps")
def test_uprobe_auto_attach(tmp_path):
    import ctypes
    obj = _compile(tmp_path, "uprobe", _UPROBE_C % {"libc": "/" + _libc_path().lstrip("/")})
    spec = read_object(obj)
    assert spec.program_info["on_getpid"].kind.kind == "uprobe"
    libc = ctypes.CDLL(_libc_path())
    with NoLeaks():
        with spec.load() as coll:
            assert coll.attach_all() == (["on_getpid"], [])
            for _ in range(5):
                libc.getpid()
            got = coll.maps["calls"].get(struct.pack("<I", os.getpid()))
            assert got is not None and struct.unpack("<Q", got)[0] >= 5


@needs_bpf
@needs_clang
def test_legacy_maps_section(tmp_path):
    spec = read_object(_compile(tmp_path, "legacy", _LEGACY_C))
    m = spec.maps["legacy"]
    assert (m.type, m.key_size, m.value_size, m.max_entries) == (MapType.ARRAY, 4, 8, 4)
    with NoLeaks():
        with spec.load() as coll:
            assert coll.programs["bump"].test_run(bytes(14)).retval == XDP_PASS
            assert struct.unpack("<Q", coll.maps["legacy"][struct.pack("<I", 1)])[0] == 5


# -- writing objects ----------------------------------------------------------------------

LLVM_OBJDUMP = shutil.which("llvm-objdump-19")


def _objdump_bytes(path: str) -> dict:
    """Section name -> instruction bytes, as llvm-objdump-19 -d shows them."""
    out = subprocess.run([LLVM_OBJDUMP, "-d", path], check=True, capture_output=True,
                         text=True).stdout
    found: dict = {}
    current = None
    for line in out.splitlines():
        if line.startswith("Disassembly of section "):
            current = line[len("Disassembly of section "):].rstrip(":")
            found[current] = bytearray()
        elif current and ":\t" in line:
            hexes = line.split(":\t", 1)[1].split("\t", 1)[0].split()
            found[current] += bytes(int(h, 16) for h in hexes)
    return found


def _rewrite(path: str):
    from pybpf.object import ObjectProgram, write_object
    spec = read_object(path)
    progs = [ObjectProgram(spec.program_info[n].section, n, p.instructions)
             for n, p in spec.programs.items()]
    return spec, progs, write_object(progs, spec.maps)


@needs_clang
@pytest.mark.parametrize("name", ["counter", "ringbuf", "xdp"])
def test_written_object_reads_back(objects, name):
    spec, progs, data = _rewrite(objects[name])
    again = read_object(data)
    assert list(again.programs) == list(spec.programs)
    for n in spec.programs:
        assert [str(i) for i in again.programs[n].instructions] == \
            [str(i) for i in spec.programs[n].instructions]
        assert [i.reference for i in again.programs[n].instructions] == \
            [i.reference for i in spec.programs[n].instructions]
    for n, m in spec.maps.items():
        w = again.maps[n]
        assert (w.type, w.key_size, w.value_size, w.max_entries, w.flags) == \
            (m.type, m.key_size, m.value_size, m.max_entries, m.flags)
    assert again.license == "GPL"


@needs_clang
@pytest.mark.skipif(LLVM_OBJDUMP is None, reason="llvm-objdump-19 is not installed")
def test_written_object_disassembles_with_llvm(objects, tmp_path):
    from pybpf.asm.encoding import encode
    spec, progs, data = _rewrite(objects["counter"])
    path = tmp_path / "w.o"
    path.write_bytes(data)
    shown = _objdump_bytes(str(path))
    for prog in progs:
        expected = encode([i.replace(imm=0, src=0) if i.reference else i
                           for i in prog.instructions])
        assert bytes(shown[prog.section]) == expected


@needs_bpf
@needs_bpftool
@needs_clang
@pytest.mark.parametrize("name", ["counter", "ringbuf", "xdp"])
def test_written_object_loads_with_bpftool(objects, tmp_path, name):
    from pybpf.program import Program
    spec, progs, data = _rewrite(objects[name])
    path = tmp_path / "w.o"
    path.write_bytes(data)
    pin = _bpftool_loadall(str(path))
    try:
        with spec.load() as coll:
            for prog_name, prog in coll.programs.items():
                theirs = Program.from_pin(os.path.join(pin, prog_name))
                try:
                    assert theirs.tag == prog.tag
                finally:
                    theirs.close()
    finally:
        shutil.rmtree(pin, ignore_errors=True)


def test_writer_refuses_unknown_maps():
    from pybpf.asm.instruction import Instruction
    from pybpf.object import ObjectProgram, write_object
    lddw = Instruction(0x18, 1, 1, 0, 0, reference="nowhere")
    exit_ = Instruction(0x95)
    with pytest.raises(ObjectError, match="'nowhere'"):
        write_object([ObjectProgram("xdp", "p", [lddw, exit_])])


@needs_bpf
def test_builder_program_written_and_loaded(tmp_path):
    from pybpf.asm.instruction import Instruction
    from pybpf.object import ObjectProgram, write_object
    mov_r0_2 = Instruction(0xB7, 0, 0, 0, 2)
    data = write_object([ObjectProgram("xdp", "pass_all", [mov_r0_2, Instruction(0x95)])])
    with NoLeaks():
        with read_object(data).load() as coll:
            assert coll.programs["pass_all"].test_run(bytes(14)).retval == XDP_PASS


@needs_clang
def test_disasm_object_shows_functions_and_relocations(objects):
    from pybpf.object import disasm_object
    text = disasm_object(objects["counter"])
    assert "Disassembly of section tracepoint/syscalls/sys_enter_getppid:" in text
    assert "<count_getppid>:" in text and "<raw_enter>:" in text
    assert "R_BPF_64_64\tcounts" in text
    sub = disasm_object(objects["subprog"])
    assert "<triple>:" in sub and "R_BPF_64_32\t.text" in sub
    with pytest.raises(ObjectError):
        disasm_object(b"\x7fELF" + bytes(60))
