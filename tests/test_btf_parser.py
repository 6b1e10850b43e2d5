"""pybpf.btf.parser, resolve and targets: every kind, lookups, split (module) BTF, field
paths, enums, bitfields, prototypes, attach targets.

Blobs made with :class:`BTFBuilder` check the parser without a kernel; the running
kernel's BTF (``/sys/kernel/btf/vmlinux``) checks it at full size, and its raw listing
is compared with ``bpftool btf dump`` when bpftool is installed.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import struct
import subprocess
import sys

import pytest

from pybpf.btf import (
    BTF, AmbiguousTypeError, BTFFormatError, FieldError, Kind, TypeNotFoundError,
)
from pybpf.btf import resolve as R
from pybpf.btf.builder import BTFBuilder
from pybpf.btf.types import (
    Array, Const, Datasec, DeclTag, Enum, Float, Func, FuncProto, Fwd, Int, Ptr, Restrict,
    Struct, Typedef, TypeTag, Union, Var, Volatile,
)

HAVE_VMLINUX = os.path.exists("/sys/kernel/btf/vmlinux")
needs_vmlinux = pytest.mark.skipif(not HAVE_VMLINUX, reason="no /sys/kernel/btf/vmlinux")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def every_kind_blob() -> BTFBuilder:
    """A blob with one type of each kind (and a bitfield, a variadic prototype, a
    64-bit and a signed enum)."""
    b = BTFBuilder()
    u32 = b.add_int("unsigned int", 4)                                    # 1
    s8 = b.add_int("signed char", 1, signed=True)                         # 2
    ptr = b.add_ptr(u32)                                                  # 3
    arr = b.add_array(s8, 16, index_type=u32)                             # 4
    st = b.add_struct("pair", 24, [("a", u32, 0), ("b", arr, 32),
                                   ("bits", u32, 160, 3), ("more", u32, 163, 5)])  # 5
    un = b.add_union("either", 4, [("x", u32, 0), ("y", s8, 0)])          # 6
    en = b.add_enum("colour", [("RED", 0), ("GREEN", 1), ("MINUS", -1)])  # 7
    en64 = b.add_enum("big", [("HUGE", 1 << 40)], size=8)                 # 8
    fwd = b.add_fwd("later", union=True)                                  # 9
    td = b.add_typedef("u32_t", u32)                                      # 10
    vol = b.add_volatile(u32)                                             # 11
    con = b.add_const(vol)                                                # 12
    res = b.add_restrict(ptr)                                             # 13
    proto = b.add_func_proto(u32, [("p", ptr), ("n", u32)], variadic=True)  # 14
    fn = b.add_func("get", proto, 1)                                      # 15
    var = b.add_var("counter", u32)                                       # 16
    sec = b.add_datasec(".data", 4, [(var, 0, 4)])                        # 17
    flt = b.add_float("double", 8)                                        # 18
    tag = b.add_decl_tag("user", st, 1)                                   # 19
    ttag = b.add_type_tag("rcu", u32)                                     # 20
    assert (st, un, en, en64, fwd, td, con, res, fn, sec, flt, tag, ttag) == (
        5, 6, 7, 8, 9, 10, 12, 13, 15, 17, 18, 19, 20)
    return b


def test_every_kind_round_trips() -> None:
    btf = every_kind_blob().parse()
    assert len(btf) == 21 and btf.first_id == 1
    assert btf[1] == Int(1, "unsigned int", size=4, encoding=0, bit_offset=0, bits=32)
    assert btf[2].signed and not btf[1].signed
    assert btf[3] == Ptr(3, "", type=1)
    assert btf[4] == Array(4, "", type=2, index_type=1, nelems=16)
    pair = btf[5]
    assert isinstance(pair, Struct) and pair.size == 24
    assert [tuple(m) for m in pair.members] == [("a", 1, 0, 0), ("b", 4, 32, 0),
                                                ("bits", 1, 160, 3), ("more", 1, 163, 5)]
    assert isinstance(btf[6], Union) and btf[6].member("y").type == 2
    colour = btf[7]
    assert isinstance(colour, Enum) and colour.kind == Kind.ENUM and colour.signed
    assert colour.value("MINUS") == -1 and colour.value("GREEN") == 1
    big = btf[8]
    assert big.kind == Kind.ENUM64 and big.value("HUGE") == 1 << 40 and big.size == 8
    assert btf[9] == Fwd(9, "later", union=True)
    assert btf[10] == Typedef(10, "u32_t", type=1)
    assert isinstance(btf[11], Volatile) and isinstance(btf[12], Const)
    assert isinstance(btf[13], Restrict) and btf[13].type == 3
    proto = btf[14]
    assert isinstance(proto, FuncProto) and proto.variadic and proto.return_type == 1
    assert [p.name for p in proto.params] == ["p", "n"]
    assert btf[15] == Func(15, "get", type=14, linkage=1)
    assert btf[16] == Var(16, "counter", type=1, linkage=1)
    assert isinstance(btf[17], Datasec) and btf[17].vars[0] == (16, 0, 4)
    assert btf[18] == Float(18, "double", size=8)
    assert btf[19] == DeclTag(19, "user", type=5, component_idx=1)
    assert btf[20] == TypeTag(20, "rcu", type=1)
    kinds = {btf.kind(i) for i in range(1, len(btf))}
    assert kinds == set(Kind) - {Kind.UNKN}
    with pytest.raises(AttributeError):
        pair.size = 3  # type: ignore[misc]


def _byteswapped(blob: bytes) -> bytes:
    """The same blob in the other byte order (every field of the type section is a
    32-bit word)."""
    magic, version, flags, hdr_len, toff, tlen, soff, slen = struct.unpack_from(
        "<HBBIIIII", blob)
    header = struct.pack(">HBBIIIII", magic, version, flags, hdr_len, toff, tlen, soff, slen)
    types = blob[hdr_len + toff:hdr_len + toff + tlen]
    words = struct.unpack(f"<{len(types) // 4}I", types)
    return header + struct.pack(f">{len(words)}I", *words) + blob[hdr_len + soff:]


def test_other_byte_order() -> None:
    blob = every_kind_blob().to_bytes()
    native = BTF(blob)
    swapped = BTF(_byteswapped(blob))
    assert swapped.byteorder == "big"
    assert [swapped[i] for i in range(1, len(swapped))] == [native[i] for i in range(1, len(native))]
    assert swapped.type_id("pair") == 5


def test_malformed_blobs() -> None:
    blob = every_kind_blob().to_bytes()
    with pytest.raises(BTFFormatError, match="magic"):
        BTF(b"\0" * 32)
    with pytest.raises(BTFFormatError, match="too short"):
        BTF(blob[:10])
    with pytest.raises(BTFFormatError):
        BTF(blob[:40])                  # sections run past the end
    bad = bytearray(blob)
    struct.pack_into("<I", bad, 24 + 4, 31 << 24)        # type 1 of kind 31
    with pytest.raises(BTFFormatError, match="unknown kind"):
        BTF(bytes(bad))


def test_lookups_on_a_built_blob() -> None:
    b = BTFBuilder()
    u32 = b.add_int("unsigned int", 4)
    fwd = b.add_fwd("thing")
    full = b.add_struct("thing", 4, [("x", u32, 0)])
    proto = b.add_func_proto(0)
    f1 = b.add_func("twice", proto)
    f2 = b.add_func("twice", proto)
    btf = b.parse()
    assert btf.ids("thing") == [fwd, full]
    assert btf.type_id("thing") == full          # a complete type beats a declaration
    assert btf.type_id("thing", "fwd") == fwd
    assert btf.type_id("thing", Kind.STRUCT) == full
    with pytest.raises(AmbiguousTypeError) as info:
        btf.type_id("twice", "func")
    assert [c[1] for c in info.value.candidates] == [f1, f2]
    assert "twice" in str(info.value)
    with pytest.raises(TypeNotFoundError, match="no struct type named 'nothing'"):
        btf.type_id("nothing", "struct")
    with pytest.raises(KeyError):
        btf.type_id("thing", "union")
    with pytest.raises(ValueError, match="unknown BTF kind"):
        btf.type_id("thing", "structure")
    assert btf.ids("") == []
    assert btf.names()["twice"] == [f1, f2]


def test_split_blob_on_a_built_base() -> None:
    base_b = BTFBuilder()
    u32 = base_b.add_int("unsigned int", 4)
    task = base_b.add_struct("task", 8, [("pid", u32, 0), ("tgid", u32, 32)])
    base = base_b.parse("base")
    mod_b = BTFBuilder(base=base)
    ptr = mod_b.add_ptr(task)
    holder = mod_b.add_struct("holder", 8, [("task", ptr, 0)])
    again = mod_b.add_struct("task", 4, [("pid", u32, 0)])   # same name, in the module
    mod = mod_b.parse("mod")
    assert mod.first_id == 3 and (ptr, holder, again) == (3, 4, 5)
    assert len(mod) == 6 and mod.own_count == 3
    assert mod[1] is base[1]                    # base ids are answered by the base
    assert mod.ids("task") == [task, again]
    assert mod.ids("task", own=True) == [again]
    assert mod.type_id("holder") == holder
    fp = R.field_path(mod, "holder.task.tgid")
    assert [(s.offset, s.size, s.deref) for s in fp.steps] == [(0, 8, True), (4, 4, False)]
    # the member name "pid" is stored once, in the base's strings
    assert mod[again].members[0].name == "pid"


def test_ctypes_bitfields_match_resolve() -> None:
    class Flags(ctypes.Structure):
        _fields_ = [("a", ctypes.c_uint8), ("f1", ctypes.c_uint32, 3),
                    ("f2", ctypes.c_int32, 7), ("f3", ctypes.c_uint32, 22),
                    ("tail", ctypes.c_uint16), ("g", ctypes.c_int16, 5)]

    b = BTFBuilder()
    b.add_ctype(Flags)
    btf = b.parse()
    value = Flags(a=9, f1=5, f2=-17, f3=123456, tail=7, g=-3)
    raw = bytes(value)
    for name in ("a", "f1", "f2", "f3", "tail", "g"):
        fp = R.field_path(btf, f"Flags.{name}")
        (step,) = fp.steps
        loaded = int.from_bytes(raw[step.offset:step.offset + step.size], "little")
        assert R.extract_bitfield(loaded, step) == getattr(value, name), name
        if step.bit_size:
            lsh, rsh = step.shifts()
            word = (loaded << lsh) & (2 ** 64 - 1)
            if step.signed and word >> 63:
                word -= 2 ** 64
            assert word >> rsh == getattr(value, name)
    assert R.sizeof(btf, "Flags") == ctypes.sizeof(Flags)


def test_import_parses_nothing() -> None:
    code = ("import sys, pybpf\n"
            "assert 'pybpf.btf' not in sys.modules, 'import pybpf loaded pybpf.btf'\n"
            "import pybpf.btf, pybpf.btf.parser as p\n"
            "assert p._VMLINUX is None, 'importing pybpf.btf parsed vmlinux'\n"
            "assert 'pybpf.btf.render' not in sys.modules\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr


# ---------------------------------------------------------------------------------------
# The running kernel
# ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vm() -> BTF:
    if not HAVE_VMLINUX:
        pytest.skip("no /sys/kernel/btf/vmlinux")
    from pybpf.btf import vmlinux
    return vmlinux()


@needs_vmlinux
def test_vmlinux_every_kind_parses(vm: BTF) -> None:
    from pybpf.btf.types import BtfType
    seen = {}
    for t in vm.types():
        assert isinstance(t, BtfType)
        seen.setdefault(t.kind, t.id)
        assert vm.kind(t.id) == t.kind
    # what a 6.x kernel built with pahole has; ENUM64 and TYPE_TAG are newer
    expected = {Kind.INT, Kind.PTR, Kind.ARRAY, Kind.STRUCT, Kind.UNION, Kind.ENUM,
                Kind.FWD, Kind.TYPEDEF, Kind.VOLATILE, Kind.CONST, Kind.FUNC,
                Kind.FUNC_PROTO, Kind.VAR, Kind.DATASEC}
    assert expected <= set(seen), set(expected) - set(seen)
    assert vm is __import__("pybpf.btf", fromlist=["vmlinux"]).vmlinux()   # cached


@needs_vmlinux
def test_vmlinux_lookups(vm: BTF) -> None:
    ts = vm.find("task_struct", "struct")
    assert isinstance(ts, Struct) and ts.size > 1000
    assert R.resolve_type(vm, "struct task_struct") == ts.id
    assert isinstance(vm.find("u32"), Typedef)
    assert R.sizeof(vm, "u32") == 4 and R.sizeof(vm, "u64") == 8
    assert R.sizeof(vm, "struct list_head") == 2 * vm.pointer_size
    assert vm.find("bpf_map_type", "enum").kind in (Kind.ENUM, Kind.ENUM64)
    kfree = vm.find("kfree", "func")
    assert isinstance(vm[kfree.type], FuncProto)
    with pytest.raises(TypeNotFoundError):
        vm.type_id("no_such_type_in_any_kernel")


@needs_vmlinux
def test_vmlinux_field_paths(vm: BTF) -> None:
    fp = R.field_path(vm, "task_struct.real_parent.tgid")
    first, last = fp.steps
    assert first.deref and first.size == 8
    assert first.offset == R.offsetof(vm, "task_struct", "real_parent")
    assert last.offset == R.offsetof(vm, "task_struct", "tgid") and last.size == 4
    assert last.signed and not last.deref and fp.derefs == 1
    arrows = R.field_path(vm, "task_struct->real_parent->tgid").steps
    assert [s._replace(text="") for s in arrows] == [s._replace(text="") for s in fp.steps]
    comm = R.field_path(vm, "task_struct.comm[3]")
    assert comm.offset == R.offsetof(vm, "task_struct", "comm") + 3 and comm.size == 1
    # members of anonymous unions/structs are found as in C
    daddr = R.field_path(vm, "sock.__sk_common.skc_daddr")
    assert daddr.offset == R.offsetof(vm, "sock_common", "skc_daddr")
    with pytest.raises(FieldError, match="no member 'nonexistent'"):
        R.field_path(vm, "task_struct.nonexistent")
    with pytest.raises(FieldError, match="not a struct"):
        R.field_path(vm, "task_struct.pid.x")
    with pytest.raises(FieldError, match="does not follow pointers"):
        R.offsetof(vm, "task_struct", "real_parent.tgid")


@needs_vmlinux
def test_vmlinux_bitfield_path(vm: BTF) -> None:
    ts = vm.find("task_struct", "struct")
    member = next((m for m in ts.members if m.bitfield_size), None)
    if member is None:
        pytest.skip("task_struct has no bitfield here")
    step = R.field_path(vm, f"task_struct.{member.name}").steps[-1]
    assert step.bit_size == member.bitfield_size
    assert step.offset * 8 + step.bit_shift == member.bit_offset
    with pytest.raises(FieldError, match="bitfield"):
        R.offsetof(vm, "task_struct", member.name)
    assert R.bit_offsetof(vm, "task_struct", member.name) == member.bit_offset


@needs_vmlinux
def test_vmlinux_enums_and_prototypes(vm: BTF) -> None:
    assert R.enum_value(vm, "BPF_MAP_TYPE_HASH") == 1
    assert R.enum_value(vm, "BPF_PROG_TYPE_XDP", "bpf_prog_type") == 6
    assert R.enum_value(vm, "BPF_PROG_TYPE_XDP", "enum bpf_prog_type") == 6
    with pytest.raises(TypeNotFoundError):
        R.enum_value(vm, "NO_SUCH_ENUMERATOR_ANYWHERE")
    proto = R.prototype(vm, "do_sys_open")
    assert [a.name for a in proto.args][:2] == ["dfd", "filename"]
    assert proto.arg("filename").pointer and proto.arg("filename").ctx_offset == 8
    assert proto.arg("dfd").signed
    tp = R.tracepoint_prototype(vm, "sched_switch")
    names = [a.name for a in tp.args]
    assert "prev" in names and "next" in names
    assert tp.arg("next").ctx_offset == 8 * names.index("next")


@needs_vmlinux
def test_attach_targets(vm: BTF, monkeypatch: pytest.MonkeyPatch) -> None:
    from pybpf.btf import targets
    t = targets.find_target("do_sys_open", "fentry")
    assert tuple(t) == (0, vm.type_id("do_sys_open", "func")) and not t.is_module
    tp = targets.find_target("sched_switch", "tp_btf")
    assert tp.name == "btf_trace_sched_switch" and vm.kind(tp.type_id) == Kind.TYPEDEF
    assert targets.find_target("btf_trace_sched_switch", "tp_btf").type_id == tp.type_id
    if vm.ids("bpf_lsm_file_open", "func"):
        assert targets.find_target("file_open", "lsm").name == "bpf_lsm_file_open"
    it = targets.find_target("task", "iter")
    assert vm.name_of(it.type_id) == "bpf_iter_task" and vm.kind(it.type_id) == Kind.FUNC
    with pytest.raises(TypeNotFoundError, match="no func attach target"):
        targets.find_target("surely_not_a_kernel_function", "func")
    with pytest.raises(ValueError, match="unknown attach target kind"):
        targets.find_target("x", "uprobe")

    # a module with a function of the same name makes the plain name ambiguous
    mod_b = BTFBuilder(base=vm)
    mod_b.add_func("do_sys_open", mod_b.add_func_proto(0))
    mod_b.add_func("fake_only_here", mod_b.add_func_proto(0))
    fake = mod_b.parse("fakemod")
    monkeypatch.setattr(targets, "module_names", lambda: ["fakemod"])
    monkeypatch.setattr(targets, "load_module",
                        lambda name: fake if name == "fakemod" else vm)
    with pytest.raises(AmbiguousTypeError) as info:
        targets.find_target("do_sys_open", "func")
    where = [c[0] for c in info.value.candidates]
    assert where == ["vmlinux", "fakemod"] and "module:name" in str(info.value)
    assert targets.find_target("vmlinux:do_sys_open").module == "vmlinux"
    monkeypatch.setattr(targets, "open_btf_object", lambda name: 0)
    found = targets.find_target("fakemod:fake_only_here")
    assert found.module == "fakemod" and found.type_id == fake.ids("fake_only_here")[0]


@needs_vmlinux
def test_real_module_btf() -> None:
    from pybpf.btf import load_module, module_names
    names = module_names()
    if not names:
        pytest.skip("no kernel module has BTF in /sys/kernel/btf on this machine")
    mod = load_module(names[0])
    assert mod.base is not None and mod.first_id == len(mod.base)
    for t in mod.types():
        assert t.id >= mod.first_id
    assert load_module(names[0]) is mod


@needs_vmlinux
@pytest.mark.skipif(shutil.which("bpftool") is None, reason="bpftool is not installed")
def test_raw_listing_matches_bpftool(tmp_path) -> None:
    """Every type, field by field: ``pybpf btf dump`` against ``bpftool btf dump file
    /sys/kernel/btf/vmlinux`` (bpftool's raw format)."""
    ours = tmp_path / "ours.txt"
    theirs = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                            capture_output=True, text=True, timeout=120, check=True).stdout
    with open(ours, "w") as fh:
        run = subprocess.run([sys.executable, "-m", "pybpf", "btf", "dump"], stdout=fh,
                             stderr=subprocess.PIPE, text=True, cwd=ROOT, timeout=120)
    assert run.returncode == 0, run.stderr
    mine = ours.read_text().split("\n")
    expected = [line.rstrip() for line in theirs.split("\n")]
    assert len(mine) == len(expected)
    diffs = [(a, b) for a, b in zip(expected, mine) if a != b]
    assert not diffs, diffs[:5]
