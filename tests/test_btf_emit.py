"""BTF made by pybpf, loaded into the kernel and read back by bpftool:

* a program built with source locations loads with func_info/line_info, and
  ``bpftool prog dump xlated id N`` shows the Python source lines (``linum`` the file
  and line numbers), including a subprogram's;
* the verifier's log of a refused program shows them too;
* a map created with key/value BTF from ctypes types is printed by
  ``bpftool map dump id N`` with its field names;
* a blob with one type of every kind passes ``BPF_BTF_LOAD``; no fd is left open.
"""

from __future__ import annotations

import ctypes
import json
import os
import subprocess

import pytest

from pybpf.asm import R0, R1
from pybpf.asm.builder import Builder, add, call_local, exit_, ldx, mov
from pybpf.btf.builder import BTFBuilder, map_btf, program_btf
from pybpf.program import ProgramSpec, VerifierError
from pybpf.syscall.bpf import MapType, ProgType


from bpfenv import needs_bpf, needs_bpftool

pytestmark = [needs_bpf, needs_bpftool]


def _bpftool(*args: str) -> str:
    run = subprocess.run(["bpftool", *args], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _program() -> list:
    b = Builder(record_source=True)
    b.emit(mov(R1, 20))                      # the first line pybpf should show
    b.emit(call_local("double_it"))
    b.emit(add(R0, 2))
    b.emit(exit_())
    b.label("double_it")
    b.emit(mov(R0, R1))                      # inside the subprogram
    b.emit(add(R0, R1))
    b.emit(exit_())
    return b.link()


def test_prog_dump_xlated_shows_python_lines() -> None:
    before = _open_fds()
    insns = _program()
    with ProgramSpec(ProgType.XDP, insns, name="btf_lines").load() as prog:
        assert prog.test_run(bytes(14)).retval == 42
        info = prog.info()
        assert info.btf_id, "the program was loaded without BTF"
        text = _bpftool("prog", "dump", "xlated", "id", str(info.id))
        assert "int btf_lines(void * ctx):" in text
        assert "; b.emit(mov(R1, 20))                      # the first line pybpf" in text
        assert "long int double_it(" in text
        assert "; b.emit(mov(R0, R1))                      # inside the subprogram" in text
        # each source line comes before its instruction
        lines = text.splitlines()
        first = lines.index(next(ln for ln in lines if "mov(R1, 20)" in ln))
        assert lines[first + 1].strip().startswith("0: (b7) r1 = 20")
        numbered = _bpftool("prog", "dump", "xlated", "id", str(info.id), "linum")
        assert f"file:{os.path.abspath(__file__)}" in numbered or __file__ in numbered
        assert "line_num:" in numbered
        listed = json.loads(_bpftool("prog", "show", "id", str(info.id), "--json"))
        assert listed["btf_id"] == info.btf_id
    assert _open_fds() == before


def test_line_records_follow_source_changes() -> None:
    insns = _program()
    built = program_btf(insns, "btf_lines")
    assert built is not None and built.functions == ("btf_lines", "double_it")
    # seven instructions on seven lines, and the subprogram start is one of them
    assert built.line_count == 7
    no_source = [ins.replace(source=None) for ins in insns]
    assert program_btf(no_source) is None
    # instructions sharing a line share one record
    b = Builder(record_source=True)
    b.emit(mov(R0, 1), add(R0, 1), exit_())
    assert program_btf(b.link()).line_count == 1


def test_verifier_log_shows_python_lines() -> None:
    b = Builder(record_source=True)
    b.emit(mov(R0, 0))
    b.emit(ldx(8, R0, R1, 4000))             # far outside the socket filter's context
    b.emit(exit_())
    with pytest.raises(VerifierError) as info:
        ProgramSpec(ProgType.SOCKET_FILTER, b.link(), name="btf_bad").load()
    assert "; b.emit(ldx(8, R0, R1, 4000))" in info.value.log


def test_source_lines_can_be_turned_off() -> None:
    b = Builder(record_source=True)
    b.emit(mov(R0, 2), exit_())
    with ProgramSpec(ProgType.XDP, b.link(), source_lines=False).load() as prog:
        assert prog.info().btf_id == 0


class Inner(ctypes.Structure):
    _fields_ = [("lo", ctypes.c_uint16), ("hi", ctypes.c_uint16)]


class Event(ctypes.Structure):
    _fields_ = [("pid", ctypes.c_uint32), ("comm", ctypes.c_char * 16),
                ("flags", ctypes.c_uint32, 3), ("level", ctypes.c_uint32, 5),
                ("pair", Inner), ("ns", ctypes.c_uint64)]


def test_map_dump_shows_field_names() -> None:
    from pybpf.syscall.maps import map_create, map_update_elem
    from pybpf.syscall.objects import map_info
    before = _open_fds()
    mb = map_btf(ctypes.c_uint32, Event)
    try:
        fd = map_create(MapType.HASH, 4, ctypes.sizeof(Event), 4, name="btf_events",
                        btf_fd=mb.fd, btf_key_type_id=mb.key_type_id,
                        btf_value_type_id=mb.value_type_id)
    finally:
        mb.close()
    with fd:
        value = Event(pid=42, comm=b"python3", flags=5, level=17, pair=Inner(7, 9), ns=123)
        map_update_elem(fd, (7).to_bytes(4, "little"), bytes(value))
        info = map_info(fd)
        assert info.btf_id and info.btf_value_type_id == mb.value_type_id
        text = _bpftool("map", "dump", "id", str(info.id))
        for name in ('"pid": 42', '"comm": "python3"', '"flags": 0x5', '"level": 0x11',
                     '"lo": 7', '"hi": 9', '"ns": 123', '"key": 7'):
            assert name in text, text
        dumped = json.loads(_bpftool("map", "dump", "id", str(info.id), "--json"))
        assert dumped[0]["formatted"]["value"]["pair"] == {"lo": 7, "hi": 9}
    assert _open_fds() == before


def test_array_map_with_btf_through_map_spec() -> None:
    """MapSpec(btf=True) describes ctypes key and value types to the kernel."""
    from pybpf.maps.spec import MapSpec
    before = _open_fds()
    spec = MapSpec(MapType.ARRAY, ctypes.c_uint32, Event, 2, name="btf_spec", btf=True)
    with spec.create() as m:
        m[1] = Event(pid=9, pair=Inner(3, 4))
        assert m.info().btf_id
        text = _bpftool("map", "dump", "id", str(m.id))
        assert '"pid": 9' in text and '"lo": 3' in text, text
    assert _open_fds() == before


def test_every_kind_loads_into_the_kernel() -> None:
    from test_btf_parser import every_kind_blob
    with every_kind_blob().load() as fd:
        assert fd.fileno() > 0
    b = BTFBuilder()
    b.add_struct("broken", 2, [("x", b.add_int("int", 4, signed=True), 0)])
    with pytest.raises(OSError) as info:
        b.load()
    assert "exceeds" in getattr(info.value, "log", "")
