"""The kernel's enums built by pybpf._enum.enum_of (the standard library's fast builder
where Python has it) equal the same classes built the usual way: every module defining
them is executed a second time with the usual builder and each pair is compared by the
standard library's own checker (``enum._test_simple_enum``: members, values, names,
order, methods, repr/str/format)."""

from __future__ import annotations

import enum
import importlib
import importlib.util
import sys

import pytest

import pybpf._enum as fast

MODULES = ["pybpf.syscall.bpf", "pybpf.syscall.maps", "pybpf.syscall.objects",
           "pybpf.syscall.perf", "pybpf.btf.format", "pybpf.events.wakeup",
           "pybpf.asm.opcodes", "pybpf.maps.spec"]
USUAL = {"Group"}           # asm.opcodes.Group (a str mixin) is a usual class statement


def _usual_copy(name: str, monkeypatch: pytest.MonkeyPatch) -> object:
    """The module executed again (under another name, same package) with enum_of
    building through the class statement's usual path."""
    monkeypatch.setattr(fast, "_SIMPLE", None)
    real = importlib.import_module(name)
    spec = importlib.util.spec_from_file_location(name + "_usual", real.__file__)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = real.__package__
    monkeypatch.setitem(sys.modules, name + "_usual", mod)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name", MODULES)
def test_fast_enums_equal_usual_ones(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module(name)
    built = {k: v for k, v in vars(real).items() if isinstance(v, enum.EnumMeta)
             and v.__module__ == name}
    assert built, f"{name} defines no enum"
    usual = _usual_copy(name, monkeypatch)
    usual_enums = {k: v for k, v in vars(usual).items() if isinstance(v, enum.EnumMeta)
                   and v.__module__ == name + "_usual"}
    assert sorted(usual_enums) == sorted(built)
    for cls_name, cls in built.items():
        other = usual_enums[cls_name]
        assert [(m.name, m.value) for m in cls] == [(m.name, m.value) for m in other]
        assert cls.__doc__ == other.__doc__
        if hasattr(enum, "_test_simple_enum") and cls_name not in USUAL:   # Python 3.11+
            # the checker wants both classes to look alike: same name and module
            other.__module__ = cls.__module__
            enum._test_simple_enum(other, cls)          # raises TypeError on a difference


def test_members_behave_as_before() -> None:
    from pybpf.syscall.bpf import MapFlags, MapType, ProgType
    from pybpf.events.wakeup import WakeupPolicy
    assert MapType(1) is MapType.HASH and MapType["ARRAY"] == 2
    assert repr(MapType.HASH) == "<MapType.HASH: 1>" and MapType.HASH == 1
    assert isinstance(ProgType.KPROBE, int) and ProgType.KPROBE.name == "KPROBE"
    assert repr(MapFlags.RDONLY | MapFlags.WRONLY) == "<MapFlags.RDONLY|WRONLY: 24>"
    assert MapFlags(1 << 30) == 1 << 30             # IntFlag keeps unknown bits
    assert WakeupPolicy("adaptive") is WakeupPolicy.ADAPTIVE
    with pytest.raises(ValueError):
        MapType(10_000)
