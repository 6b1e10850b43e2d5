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

from bpfenv import BPF_UNAVAILABLE, BPFTOOL, needs_bpf, needs_bpftool
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
    for name in ("counter", "subprog", "globals", "ringbuf", "xdp", "core", "core_bad",
                 "core_kinds", "externs", "values", "verifier_bad"):
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
@given(name=st.sampled_from(["subprog", "counter", "globals", "core", "values",
                             "core_kinds"]),
       edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                st.integers(0, 255)), min_size=1, max_size=8))
def test_fuzz_only_object_error(objects, name, edits):
    data = bytearray(_base(objects, name))
    for where, value in edits:
        data[int(where * len(data))] = value
    from pybpf.object import disasm_object
    for reader in (read_object, lambda raw: disasm_object(raw, relocations=True)):
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
    text = disasm_object(objects["counter"], relocations=True)
    assert "Disassembly of section tracepoint/syscalls/sys_enter_getppid:" in text
    assert "<count_getppid>:" in text and "<raw_enter>:" in text
    assert "R_BPF_64_64\tcounts" in text
    sub = disasm_object(objects["subprog"], relocations=True)
    assert "<triple>:" in sub and "R_BPF_64_32\t.text" in sub
    with pytest.raises(ObjectError):
        disasm_object(b"\x7fELF" + bytes(60))


# -- the object's BTF at load: func_info and line_info ------------------------------------

def _xlated(prog) -> str:
    pin = f"/sys/fs/bpf/pybpf_object_test_{uuid.uuid4().hex[:8]}"
    prog.pin(pin)
    try:
        return subprocess.run([BPFTOOL, "prog", "dump", "xlated", "pinned", pin],
                              check=True, capture_output=True, text=True).stdout
    finally:
        os.unlink(pin)


@needs_clang
def test_instructions_carry_c_lines(objects):
    spec = read_object(objects["subprog"])
    prog = spec.programs["calls"]
    info = spec.program_info["calls"]
    assert info.func_info and info.line_info
    locs = [i.source for i in prog.instructions]
    assert all(loc is not None and loc.file.endswith("subprog.c") for loc in locs)
    texts = {loc.text for loc in locs}
    assert "return x * 3;" in texts                      # the subprogram copied in
    assert any("add_triple(len, 1)" in t for t in texts)
    # one func_info record per function copied: calls, add_triple, triple
    assert len(info.func_info) == 3 * 8
    assert spec.btf is not None


@needs_bpf
@needs_bpftool
@needs_clang
@pytest.mark.parametrize("name, prog_name, line", [
    ("counter", "count_getppid", "u32 key = pid_tgid() >> 32;"),
    ("subprog", "calls", "return x * 3;"),
    ("globals", "globals_prog", "data_counter += multiplier;"),
])
def test_bpftool_shows_c_source_lines(objects, name, prog_name, line):
    import warnings
    with NoLeaks():
        with warnings.catch_warnings():
            warnings.simplefilter("error")              # the BTF must be accepted
            with read_object(objects[name]).load() as coll:
                text = _xlated(coll.programs[prog_name])
                info = coll.programs[prog_name].info()
    assert f"; {line}" in text
    assert f"int {prog_name}(" in text                  # the FUNC from func_info
    assert info is not None


@needs_bpf
@needs_clang
def test_verifier_error_names_the_c_line(objects):
    from pybpf.program import VerifierError
    src = open(os.path.join(SOURCES, "verifier_bad.c")).read().splitlines()
    bad_line = next(n for n, text in enumerate(src, 1) if "PYBPF_BAD_LINE" in text)
    with NoLeaks():
        with pytest.raises(VerifierError) as info:
            read_object(objects["verifier_bad"]).load()
    err = info.value
    assert err.source is not None and err.source.line == bad_line
    assert err.source.file.endswith("verifier_bad.c")
    assert "PYBPF_BAD_LINE" in str(err)
    assert "; return data[0] == 0xff" in err.log         # line_info in the kernel's log


# -- externs: __kconfig and __ksym --------------------------------------------------------

def _kernel_config() -> dict:
    from pybpf.object.externs import read_kernel_config
    return read_kernel_config()[0]


def _kallsyms(name: str) -> int:
    with open("/proc/kallsyms") as fh:
        for line in fh:
            parts = line.split()
            if len(parts) == 3 and parts[2] == name:
                return int(parts[0], 16)
    return 0


@needs_bpf
@needs_kernel_btf
@needs_clang
def test_kconfig_and_ksym_externs(objects):
    import re as _re
    config = _kernel_config()
    if "CONFIG_HZ" not in config:
        pytest.skip("no readable kernel configuration")
    spec = read_object(objects["externs"])
    assert spec.externs["bpf_cast_to_kern_ctx"].kind == "kfunc"
    assert spec.externs["CONFIG_PYBPF_NO_SUCH_OPTION"].weak
    assert spec.data[".kconfig"].readonly
    with NoLeaks():
        with spec.load() as coll:
            assert coll.programs["externs"].test_run(bytes(14)).retval == XDP_PASS
            out = struct.unpack("<7Q", coll.maps[".bss"][0])
            assert coll.maps[".kconfig"].frozen
    a, b, c = (int(x) for x in _re.match(r"(\d+)\.(\d+)\.?(\d*)",
                                         os.uname().release).groups(default="0"))
    assert out[0] == (a << 16) | (b << 8) | min(c, 255)
    assert out[1] == int(config["CONFIG_HZ"])
    assert out[2] == (config.get("CONFIG_BPF_SYSCALL") == "y")
    assert out[3] == 0                                   # weak and missing
    host = config["CONFIG_DEFAULT_HOSTNAME"].strip('"').encode() + b"\0\0"
    assert out[4] == host[0] | host[1] << 8
    assert out[5] == _kallsyms("_text") != 0
    assert out[6] == 1                                   # the kfunc ran


@needs_kernel_btf
@needs_clang
def test_kconfig_override(objects):
    spec = read_object(objects["externs"], kconfig={
        "CONFIG_HZ": "1000", "CONFIG_BPF_SYSCALL": "n", "CONFIG_PYBPF_NO_SUCH_OPTION": "0x2a",
        "CONFIG_DEFAULT_HOSTNAME": '"ab"'})
    init = spec.data[".kconfig"].initial
    ext = spec.externs
    def val(name):
        e = ext[name]
        return int.from_bytes(init[e.offset:e.offset + e.size], "little")
    assert val("CONFIG_HZ") == 1000 and val("CONFIG_BPF_SYSCALL") == 0
    assert val("CONFIG_PYBPF_NO_SUCH_OPTION") == 42
    e = ext["CONFIG_DEFAULT_HOSTNAME"]
    assert bytes(init[e.offset:e.offset + e.size]) == b"ab" + bytes(14)


_TYPED_KSYM_C = r"""
#include "pybpf_test.h"
struct rq { int cpu; } __attribute__((preserve_access_index));
extern const struct rq runqueues __ksym;
static void *(*this_cpu_ptr)(const void *p) = (void *)154;
SEC("xdp")
int typed(struct xdp_md *ctx)
{
    struct rq *rq = this_cpu_ptr(&runqueues);
    return rq->cpu == 0 ? 2 : 1;
}
char LICENSE[] SEC("license") = "GPL";
"""


@needs_kernel_btf
@needs_clang
def test_typed_ksym_is_a_btf_id(tmp_path):
    from pybpf.btf import vmlinux
    spec = read_object(_compile(tmp_path, "typed", _TYPED_KSYM_C))
    lddw = [i for i in spec.programs["typed"].instructions if i.opcode == 0x18]
    want = [i for i in vmlinux().ids("runqueues") if vmlinux().kind(i).name == "VAR"]
    assert len(lddw) == 1 and lddw[0].src == 3 and lddw[0].imm == want[0]
    # the kernel resolves the address with kallsyms: per-CPU variables are listed
    # only with CONFIG_KALLSYMS_ALL
    if _kernel_config().get("CONFIG_KALLSYMS_ALL") != "y" or BPF_UNAVAILABLE:
        return
    os.sched_setaffinity(0, {0})
    with NoLeaks():
        with spec.load() as coll:
            assert coll.programs["typed"].test_run(bytes(14)).retval == XDP_PASS


@needs_kernel_btf
@needs_clang
@pytest.mark.parametrize("decl, use, message", [
    ("extern int CONFIG_PYBPF_MISSING __kconfig;", "CONFIG_PYBPF_MISSING",
     r"extern 'CONFIG_PYBPF_MISSING' \(__kconfig\): not in the kernel configuration"),
    ("extern int CONFIG_HZ __kconfig;", "CONFIG_HZ", None),
    ("extern _Bool CONFIG_HZ __kconfig;", "CONFIG_HZ",
     r"extern 'CONFIG_HZ' \(__kconfig\): value '\d+' for a bool"),
    ("extern const void pybpf_no_such_symbol __ksym;", "(long)&pybpf_no_such_symbol",
     r"extern 'pybpf_no_such_symbol' \(__ksym\): not in /proc/kallsyms"),
    ("extern const void pybpf_weak_symbol __ksym __weak;", "(long)&pybpf_weak_symbol", None),
    ("extern int pybpf_no_such_kfunc(void) __ksym;", "pybpf_no_such_kfunc()",
     r"extern 'pybpf_no_such_kfunc' \(__ksym function\): no kfunc"),
    ("struct rq___x { long cpu; } __attribute__((preserve_access_index));"
     "extern const struct file runqueues __ksym;", "(long)&runqueues",
     r"extern 'runqueues' \(__ksym\): local type struct 'file' does not match"),
])
def test_unsatisfiable_externs_are_named(tmp_path, decl, use, message):
    from pybpf.object.externs import ExternError
    src = ('#include "pybpf_test.h"\n' + decl + "\nstruct file { int x; };\n"
           "SEC(\"xdp\") int p(struct xdp_md *ctx) { return (int)" + use + "; }\n"
           "char LICENSE[] SEC(\"license\") = \"GPL\";\n")
    obj = _compile(tmp_path, "ext", src)
    if message is None:
        assert "p" in read_object(obj).programs
    else:
        with pytest.raises(ExternError, match=message):
            read_object(obj)


# -- CO-RE: every relocation kind ---------------------------------------------------------

def _member_bits(btf, comp, name, base=0):
    """(bit offset, bitfield size) of member ``name``, looking into anonymous members."""
    from types import SimpleNamespace
    for m in comp.members:
        if m.name == name:
            return SimpleNamespace(bit_offset=base + m.bit_offset,
                                   bitfield_size=m.bitfield_size)
        if not m.name:
            inner = btf.type(m.type)
            if hasattr(inner, "members"):
                found = _member_bits(btf, inner, name, base + m.bit_offset)
                if found is not None:
                    return found
    return None


@needs_bpf
@needs_kernel_btf
@needs_clang
def test_core_all_kinds(objects):
    from pybpf.btf import vmlinux
    from pybpf.btf.resolve import sizeof
    k = vmlinux()
    member = _member_bits(k, k.find("sk_buff", "struct"), "pkt_type")
    spec = read_object(objects["core_kinds"])
    with NoLeaks():
        with spec.load() as coll:
            prog = coll.programs["kinds"]
            got = {}
            for mac, want in ((b"\x01\x00\x5e\x00\x00\x01", 2),   # PACKET_MULTICAST
                              (b"\x02\x00\x00\x00\x00\x01", 3),   # PACKET_OTHERHOST
                              (bytes(6), 0)):                     # PACKET_HOST (lo)
                prog.test_run(mac + bytes(6) + b"\x08\x00" + bytes(50))
                out = struct.unpack("<16Q", coll.maps[".bss"][0])
                got[want] = out[0]
    assert got == {2: 2, 3: 3, 0: 0}                    # the bitfield, read for real
    byte_off, byte_sz, lshift, rshift, signed = out[1:6]
    assert byte_sz == 1 and signed == 0
    assert byte_off == member.bit_offset // 8
    assert lshift == 64 - (member.bit_offset - 8 * byte_off + member.bitfield_size)
    assert rshift == 64 - member.bitfield_size
    assert out[6] == k.type_id("task_struct", "struct")  # type id in vmlinux
    from pybpf.btf.parser import BTF
    assert BTF(spec.btf).name_of(out[7]) == "task_struct"        # type id in the object's BTF
    assert out[8:10] == (1, 0)                           # type exists
    assert out[10] == sizeof(k, k.type_id("task_struct", "struct"))
    assert out[11:13] == (1, 0)                          # type matches
    assert out[13] == 27 and out[14] == 0                # enum value, enum exists
    assert out[15] == 4 * 100 + 10 + 0                   # len: 4 bytes, exists, unsigned


@needs_bpf
@needs_bpftool
@needs_kernel_btf
@needs_clang
@pytest.mark.parametrize("name", ["core_kinds", "externs", "values"])
def test_same_program_as_bpftool_new_features(objects, name):
    """libbpf resolves CO-RE, externs and kfuncs to the same instructions (the prog
    array libbpf fills is emptied when bpftool exits, so verdicts are not compared)."""
    from pybpf.program import Program
    pin = _bpftool_loadall(objects[name])
    try:
        with read_object(objects[name]).load() as coll:
            for prog_name, prog in coll.programs.items():
                with Program.from_pin(os.path.join(pin, prog_name)) as theirs:
                    assert theirs.tag == prog.tag, prog_name
    finally:
        shutil.rmtree(pin, ignore_errors=True)


# -- initialised prog arrays and maps of maps ---------------------------------------------

@needs_clang
def test_read_map_values(objects):
    spec = read_object(objects["values"])
    assert spec.map_values == {"outer": {1: ("map", "inner_b")},
                               "jumps": {2: ("prog", "tail_tx")}}
    outer = spec.maps["outer"]
    assert outer.type == MapType.ARRAY_OF_MAPS and outer.value_size == 4
    assert outer.inner is not None and outer.inner.value_size == 8


@needs_bpf
@needs_clang
def test_map_values_filled_after_load(objects):
    with NoLeaks():
        with read_object(objects["values"]).load() as coll:
            entry = coll.programs["entry"]
            assert entry.test_run(bytes(14)).retval == XDP_TX       # the tail call ran
            assert entry.test_run(bytes(14)).retval == XDP_TX
            assert struct.unpack("<Q", coll.maps["inner_b"][0])[0] == 14
            assert struct.unpack("<Q", coll.maps["inner_a"][0])[0] == 0
            assert coll.maps["jumps"][2] == coll.programs["tail_tx"].info().id


@needs_bpf
@needs_clang
def test_map_values_skip_programs_not_loaded(objects):
    with NoLeaks():
        with read_object(objects["values"]).load(programs=["entry"]) as coll:
            assert coll.programs["entry"].test_run(bytes(14)).retval == XDP_DROP


# -- writing objects: subprograms, global data, func_info and line_info --------------------

def _rebuild(path: str):
    from pybpf.object import ObjectProgram, build_object
    spec = read_object(path)
    progs = [ObjectProgram(spec.program_info[n].section, n, p.instructions)
             for n, p in spec.programs.items()]
    data = {k: v for k, v in spec.data.items() if k != ".kconfig"}
    return spec, build_object(progs, spec.maps, data, variables=spec.variables)


@needs_clang
@pytest.mark.skipif(LLVM_OBJDUMP is None, reason="llvm-objdump-19 is not installed")
@pytest.mark.parametrize("name", ["subprog", "globals", "counter", "ringbuf"])
def test_written_object_llvm_and_pybpf_disassemble_alike(objects, tmp_path, name):
    from pybpf.object import disasm_object
    _, data = _rebuild(objects[name])
    path = tmp_path / "w.o"
    path.write_bytes(data)
    for flags, alu32 in (([], False), (["--mcpu=v4"], True)):
        llvm = subprocess.run([LLVM_OBJDUMP, "-d", *flags, str(path)],
                              check=True, capture_output=True, text=True).stdout
        ours = disasm_object(data, name=str(path), alu32=alu32)
        assert ours.splitlines() == llvm.splitlines()
        assert sum(line.split(":\t")[0].strip().isdigit() for line in ours.splitlines()) > 5
    if name == "subprog":
        assert {line for line in ours.splitlines() if line.startswith("Disassembly")} == \
            {"Disassembly of section xdp:", "Disassembly of section .text:"}
        assert "<add_triple>:" in llvm and "<triple>:" in llvm
        assert "<triple_1>:" not in llvm            # both programs share one copy


@needs_clang
@pytest.mark.skipif(LLVM_OBJDUMP is None, reason="llvm-objdump-19 is not installed")
def test_written_object_llvm_objdump_shows_source_lines(objects, tmp_path):
    _, data = _rebuild(objects["subprog"])
    path = tmp_path / "w.o"
    path.write_bytes(data)
    text = subprocess.run([LLVM_OBJDUMP, "-S", str(path)], check=True,
                          capture_output=True, text=True).stdout
    assert "; return add_triple(len, 1) == 3 * 14 + 1 ? 2 : 1;" in text
    assert "; return x * 3;" in text


@needs_clang
@pytest.mark.parametrize("name", ["subprog", "globals"])
def test_written_subprograms_and_data_read_back(objects, name):
    spec, data = _rebuild(objects[name])
    again = read_object(data)
    assert list(again.programs) == list(spec.programs)
    for n, prog in spec.programs.items():
        new = again.programs[n]
        assert [str(i) for i in new.instructions] == [str(i) for i in prog.instructions]
        assert [i.reference for i in new.instructions] == \
            [i.reference for i in prog.instructions]
        assert [i.source for i in new.instructions] == [i.source for i in prog.instructions]
        assert len(again.program_info[n].func_info) == len(spec.program_info[n].func_info)
    assert set(again.data) == set(spec.data)
    for k, d in spec.data.items():
        assert again.data[k].initial == d.initial and again.data[k].readonly == d.readonly
    assert again.variables == spec.variables


@needs_bpf
@needs_bpftool
@needs_clang
@pytest.mark.parametrize("name", ["subprog", "globals", "counter", "ringbuf"])
def test_written_object_loads_like_the_original(objects, tmp_path, name):
    """bpftool loads the written object (subprograms, global data, BTF.ext) to the
    same instructions as pybpf loads the clang-built one."""
    from pybpf.program import Program
    spec = read_object(objects[name])
    if spec.map_values:                       # .values cannot be written: drop the maps
        pytest.skip("maps of maps are not written")
    _, data = _rebuild(objects[name])
    path = tmp_path / "w.o"
    path.write_bytes(data)
    pin = _bpftool_loadall(str(path))
    try:
        with NoLeaks():
            with spec.load() as coll:
                for prog_name, prog in coll.programs.items():
                    with Program.from_pin(os.path.join(pin, prog_name)) as theirs:
                        assert theirs.tag == prog.tag
                        xlated = subprocess.run(
                            [BPFTOOL, "prog", "dump", "xlated", "pinned",
                             os.path.join(pin, prog_name)],
                            check=True, capture_output=True, text=True).stdout
                        assert "\n; " in xlated         # our line_info, as loaded
    finally:
        shutil.rmtree(pin, ignore_errors=True)


def _builder_program():
    """An XDP program built with pybpf.asm: reads .rodata+4, calls a subprogram that
    doubles it, stores the result in .bss and returns it."""
    from pybpf.asm.builder import (Builder, add, call_local, exit_, ld_map_value, ldx,
                                   mov, stx)
    from pybpf.asm.opcodes import Reg
    R0, R1, R2, R6 = Reg.R0, Reg.R1, Reg.R2, Reg.R6
    b = Builder(record_source=True)
    b.emit(ld_map_value(R6, ".rodata", 4))
    b.emit(ldx(4, R1, R6, 0))
    b.emit(call_local("double"))
    b.emit(ld_map_value(R2, ".bss", 8))
    b.emit(stx(8, R2, 0, R0))
    b.emit(exit_())
    b.label("double")
    b.emit(mov(R0, R1))
    b.emit(add(R0, R1))
    b.emit(exit_())
    return b.link()


@needs_bpf
@needs_bpftool
def test_builder_program_with_data_and_subprogram(tmp_path):
    from pybpf.object import ObjectProgram, Variable, build_object
    insns = _builder_program()
    rodata = bytes(4) + struct.pack("<I", 21)
    data = build_object([ObjectProgram("xdp", "doubled", insns)],
                        data={".rodata": rodata, ".bss": bytes(16)},
                        variables={"half": Variable(".rodata", 4, 4),
                                   "result": Variable(".bss", 8, 8)})
    spec = read_object(data)
    assert spec.variables["half"].offset == 4 and spec.data[".rodata"].readonly
    prog = spec.programs["doubled"]
    assert [i.label for i in prog.instructions if i.label] == ["double"]
    here = os.path.abspath(__file__)
    assert all(i.source is not None and i.source.file == here for i in prog.instructions)
    with NoLeaks():
        with spec.load() as coll:
            assert coll.programs["doubled"].test_run(bytes(14)).retval == 42
            assert struct.unpack("<QQ", coll.maps[".bss"][0]) == (0, 42)
            text = _xlated(coll.programs["doubled"])
    assert "; b.emit(call_local(\"double\"))" in text
    path = tmp_path / "b.o"
    path.write_bytes(data)
    pin = _bpftool_loadall(str(path))
    shutil.rmtree(pin, ignore_errors=True)


@pytest.mark.skipif(LLVM_OBJDUMP is None, reason="llvm-objdump-19 is not installed")
def test_builder_program_source_lines_in_llvm_objdump(tmp_path):
    from pybpf.object import ObjectProgram, build_object
    path = tmp_path / "b.o"
    build_object([ObjectProgram("xdp", "doubled", _builder_program())],
                 data={".rodata": bytes(8), ".bss": bytes(16)}, path=path)
    text = subprocess.run([LLVM_OBJDUMP, "-S", str(path)], check=True,
                          capture_output=True, text=True).stdout
    assert '; b.emit(ld_map_value(R6, ".rodata", 4))' in text
    assert "; b.emit(add(R0, R1))" in text
    assert "<double>:" in text


def test_build_object_errors():
    from pybpf.asm.builder import exit_, ld_func, ld_map_value, mov
    from pybpf.asm.program import link
    from pybpf.maps.spec import MapSpec
    from pybpf.object import ObjectProgram, ObjectWriteError, build_object
    prog = [ld_map_value(1, ".data", 0), mov(0, 0), exit_()]
    with pytest.raises(ObjectWriteError, match=r"'\.data': not among the data sections"):
        build_object([ObjectProgram("xdp", "p", prog)])
    arr = MapSpec(MapType.ARRAY, 4, 8, 1)
    prog = [ld_map_value(1, "arr", 0), mov(0, 0), exit_()]
    with pytest.raises(ObjectWriteError, match="only global data"):
        build_object([ObjectProgram("xdp", "p", prog)], {"arr": arr})
    from pybpf.asm.builder import Label, build
    cb = build([ld_func(1, "cb"), mov(0, 0), exit_(), Label("cb"), mov(0, 0), exit_()])
    with pytest.raises(ObjectWriteError, match="callbacks"):
        build_object([ObjectProgram("xdp", "p", cb)])
    with pytest.raises(ObjectWriteError, match=r"\.bss must be zeroes"):
        build_object([ObjectProgram("xdp", "p", link([mov(0, 0), exit_()]))],
                     data={".bss": b"\x01"})
    with pytest.raises(ObjectWriteError, match="two programs"):
        build_object([ObjectProgram("xdp", "p", [exit_()])] * 2)


def test_section_for_program_specs():
    from pybpf.asm.builder import exit_
    from pybpf.object import ObjectWriteError, section_for
    from pybpf.program import ProgramSpec
    assert section_for(ProgramSpec(ProgType.XDP, [exit_()])) == "xdp"
    assert section_for(ProgramSpec(ProgType.TRACEPOINT, [exit_()],
                                   attach_target="syscalls/sys_enter_getppid")) == \
        "tracepoint/syscalls/sys_enter_getppid"
    with pytest.raises(ObjectWriteError, match="attach_target"):
        section_for(ProgramSpec(ProgType.KPROBE, [exit_()], name="k"))


@needs_bpf
@needs_clang
def test_object_program_loads_on_its_own(objects):
    """The ProgramSpecs of an ObjectSpec stay loadable without the Collection (their
    BTF records live in program_info)."""
    spec = read_object(objects["xdp"])
    with NoLeaks():
        with spec.programs["xdp_len"].load() as prog:
            assert prog.test_run(bytes(14)).retval == XDP_PASS


@needs_bpf
def test_build_object_from_program_specs():
    from pybpf.asm.builder import exit_, mov
    from pybpf.asm.opcodes import Reg
    from pybpf.object import build_object
    from pybpf.program import ProgramSpec
    specs = [ProgramSpec(ProgType.XDP, [mov(Reg.R0, 3), exit_()], name="tx"),
             ProgramSpec(ProgType.SOCKET_FILTER, [mov(Reg.R0, 0), exit_()], name="sock")]
    spec = read_object(build_object(specs))
    assert [spec.program_info[n].section for n in spec.programs] == ["xdp", "socket"]
    with NoLeaks():
        with spec.load() as coll:
            assert coll.programs["tx"].test_run(bytes(14)).retval == XDP_TX
