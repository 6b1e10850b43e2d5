"""Extern variables and functions of an object, resolved against the running kernel.

* ``__kconfig`` externs (section ``.kconfig`` in the object's BTF) get their values from
  the kernel configuration (``/proc/config.gz`` or ``/boot/config-$(uname -r)``) or, for
  ``LINUX_KERNEL_VERSION``, from ``uname``; they live in a read-only one-entry array
  map named ``.kconfig`` that the program reads like ``.rodata``. Kinds by C type:
  ``bool`` (y/n), a 4-byte enum (tristate: n=0, y=1, m=2), ``char`` (the letter
  ``y``/``n``/``m`` or a number), other integers (a number, or y/n/m as 1/0/2) and
  ``char[N]`` (a string). A weak extern missing from the configuration reads 0.
* ``__ksym`` externs (section ``.ksyms``): a typeless variable (``extern const void
  sym __ksym``) is its address from ``/proc/kallsyms``, loaded as a 64-bit constant;
  a typed variable (a per-CPU kernel variable) is loaded by its BTF id in vmlinux
  (``BPF_PSEUDO_BTF_ID``); a function is a kfunc, called by its BTF id
  (``BPF_PSEUDO_KFUNC_CALL``). Unresolved weak variables load 0. Only vmlinux is
  searched (not module BTF).

Anything unsatisfiable raises :class:`ExternError` naming the extern.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Tuple

from .errors import ObjectError

__all__ = ["ExternError", "Extern", "collect_externs", "kconfig_layout",
           "read_kernel_config", "kallsyms_address"]


class ExternError(ObjectError):
    """An extern (``__kconfig`` or ``__ksym``) that cannot be satisfied."""


@dataclass
class Extern:
    """An extern of the object: its name, ``kind`` (``"kconfig"``, ``"ksym"`` or
    ``"kfunc"``), the local BTF id of its VAR or FUNC, whether it is weak and, once
    resolved: the ``.kconfig`` offset and size, or the ksym's ``(src, imm)`` for its
    ``lddw`` (or the kfunc's BTF id in ``imm``)."""

    name: str
    kind: str
    type_id: int
    weak: bool
    offset: int = 0
    size: int = 0
    src: int = 0
    imm: int = 0


def _strip(btf: Any, type_id: int) -> Any:
    from ..btf.types import Modifier
    t = btf.type(type_id)
    for _ in range(64):
        if not isinstance(t, Modifier):
            return t
        t = btf.type(t.type)
    raise ObjectError(f"BTF type {type_id}: modifier loop")


def collect_externs(btf: Any, weak_names: Mapping[str, bool]) -> Dict[str, Extern]:
    """The externs the object's BTF declares (DATASECs ``.kconfig`` and ``.ksyms``);
    ``weak_names`` gives, for each undefined symbol, whether it is weak."""
    from ..btf.types import Datasec, Func, Var
    out: Dict[str, Extern] = {}
    for sec in btf.types():
        if not isinstance(sec, Datasec) or sec.name not in (".kconfig", ".ksyms"):
            continue
        for info in sec.vars:
            t = btf.type(info.type)
            if isinstance(t, Func):
                kind = "kfunc"
            elif isinstance(t, Var):
                kind = "kconfig" if sec.name == ".kconfig" else "ksym"
            else:
                raise ObjectError(f"DATASEC {sec.name!r}: entry {info.type} is neither a "
                                  f"variable nor a function")
            out[t.name] = Extern(t.name, kind, t.id, bool(weak_names.get(t.name, False)))
    return out


# -- kconfig --------------------------------------------------------------------------------

def read_kernel_config() -> Tuple[Dict[str, str], str]:
    """The running kernel's configuration (``CONFIG_X`` -> its text; ``"n"`` for the
    ``# CONFIG_X is not set`` lines) and where it was read from; ``({}, reason)`` when
    neither ``/proc/config.gz`` nor ``/boot/config-$(uname -r)`` is readable."""
    candidates = ["/proc/config.gz", f"/boot/config-{os.uname().release}"]
    for path in candidates:
        try:
            if path.endswith(".gz"):
                with gzip.open(path, "rt", errors="replace") as fh:
                    text = fh.read()
            else:
                with open(path, errors="replace") as fh:
                    text = fh.read()
        except OSError:
            continue
        return parse_config(text), path
    return {}, "no kernel configuration (" + " or ".join(candidates) + ")"


_UNSET = re.compile(r"^# (CONFIG_\w+) is not set")


def parse_config(text: str) -> Dict[str, str]:
    """``CONFIG_X=value`` lines (and ``# CONFIG_X is not set`` as ``"n"``)."""
    out: Dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        unset = _UNSET.match(line)
        if unset:
            out[unset.group(1)] = "n"
        elif line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.partition("=")
            out[key] = value
    return out


def _kernel_version_code() -> int:
    found = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", os.uname().release)
    if not found:
        return 0
    a, b, c = (int(x or 0) for x in found.groups())
    return (a << 16) | (b << 8) | min(c, 255)


def _encode(btf: Any, ext: Extern, value: str) -> bytes:
    """The bytes of kconfig ``value`` for extern ``ext`` by its C type."""
    from ..btf.types import Array, Enum, Int
    var = btf.type(ext.type_id)
    t = _strip(btf, var.type)
    bad = f"extern {ext.name!r} (__kconfig)"
    tri = {"y": 1, "n": 0, "m": 2}
    if isinstance(t, Int) and (t.is_bool or t.name == "_Bool"):
        if value not in ("y", "n"):
            raise ExternError(f"{bad}: value {value!r} for a bool (expected y or n)")
        return bytes([value == "y"])
    if isinstance(t, Enum):
        if value not in tri:
            raise ExternError(f"{bad}: value {value!r} for a tristate (expected y, n, m)")
        return tri[value].to_bytes(t.size, "little")
    if isinstance(t, Int):
        if t.size == 1 and value in tri:
            return value.encode()
        if value in tri:
            number = tri[value]
        else:
            try:
                number = int(value, 0)
            except ValueError:
                raise ExternError(f"{bad}: value {value!r} is not a number") from None
        try:
            return number.to_bytes(t.size, "little", signed=t.signed)
        except OverflowError:
            raise ExternError(f"{bad}: value {value} does not fit {t.size} bytes") \
                from None
    if isinstance(t, Array):
        elem = _strip(btf, t.type)
        if isinstance(elem, Int) and elem.size == 1:
            if len(value) < 2 or value[0] != '"' or value[-1] != '"':
                raise ExternError(f"{bad}: value {value!r} is not a string")
            raw = value[1:-1].encode().replace(b'\\"', b'"').replace(b"\\\\", b"\\")
            if len(raw) >= t.nelems:
                raise ExternError(f"{bad}: string of {len(raw)} bytes does not fit "
                                  f"char[{t.nelems}]")
            return raw + bytes(t.nelems - len(raw))
    raise ExternError(f"{bad}: unsupported type {type(t).__name__} (bool, tristate "
                      f"enum, integer, char or char array)")


def kconfig_layout(btf: Any, externs: Dict[str, Extern],
                   config: Optional[Mapping[str, str]] = None) -> bytes:
    """Place the ``__kconfig`` externs (setting their offset and size) and return the
    initial bytes of the ``.kconfig`` map. ``config`` overrides the kernel's
    configuration (read with :func:`read_kernel_config` when needed)."""
    from ..btf.resolve import sizeof
    kc = [e for e in externs.values() if e.kind == "kconfig"]
    data = bytearray()
    source = "the given configuration"
    if config is None and any(e.name.startswith("CONFIG_") for e in kc):
        config, source = read_kernel_config()
    for ext in sorted(kc, key=lambda e: e.name):
        var = btf.type(ext.type_id)
        size = int(sizeof(btf, var.type))
        align = min(size, 8) if size in (1, 2, 4, 8) else 1
        while len(data) % align:
            data.append(0)
        ext.offset, ext.size = len(data), size
        if ext.name == "LINUX_KERNEL_VERSION":
            raw = _kernel_version_code().to_bytes(size, "little")
        elif ext.name.startswith("CONFIG_"):
            value = (config or {}).get(ext.name)
            if value is None:
                if not ext.weak:
                    raise ExternError(f"extern {ext.name!r} (__kconfig): not in the kernel "
                                      f"configuration ({source}); declare it __weak to "
                                      f"read 0 instead")
                raw = bytes(size)
            else:
                raw = _encode(btf, ext, value)
        elif ext.weak:
            raw = bytes(size)
        else:
            raise ExternError(f"extern {ext.name!r} (__kconfig): unknown name (CONFIG_* "
                              f"or LINUX_KERNEL_VERSION)")
        data += raw[:size].ljust(size, b"\0")
    while len(data) % 8:
        data.append(0)
    return bytes(data)


# -- ksyms ----------------------------------------------------------------------------------

def kallsyms_address(name: str, path: str = "/proc/kallsyms") -> Optional[int]:
    """The address of kernel symbol ``name`` (vmlinux, not modules), or None."""
    needle = " " + name
    try:
        with open(path) as fh:
            for line in fh:
                if needle not in line:
                    continue
                parts = line.split()
                if len(parts) == 3 and parts[2] == name:
                    return int(parts[0], 16)
    except OSError:
        return None
    return None


def _essential(name: str) -> str:
    cut = name.find("___")
    return name[:cut] if cut > 0 else name


def resolve_ksyms(btf: Any, externs: Dict[str, Extern], kernel_btf: Any) -> None:
    """Resolve every ``__ksym`` variable and kfunc (setting ``src`` and ``imm``)."""
    from ..btf.types import Func, Var, Void
    for ext in externs.values():
        if ext.kind == "kconfig":
            continue
        local = btf.type(ext.type_id)
        if ext.kind == "kfunc":
            ids = [i for i in kernel_btf.ids(ext.name) if isinstance(kernel_btf.type(i), Func)]
            if not ids:
                raise ExternError(f"extern {ext.name!r} (__ksym function): no kfunc of that "
                                  f"name in the kernel's BTF")
            ext.src, ext.imm = 2, ids[0]
            continue
        target = _strip(btf, local.type)
        if isinstance(target, Void):
            addr = kallsyms_address(ext.name)
            if not addr:
                if not ext.weak:
                    raise ExternError(f"extern {ext.name!r} (__ksym): not in /proc/kallsyms"
                                      f" (or addresses are hidden: kptr_restrict)")
                addr = 0
            ext.src, ext.imm = 0, addr
            continue
        ids = [i for i in kernel_btf.ids(ext.name) if isinstance(kernel_btf.type(i), Var)]
        if not ids:
            if not ext.weak:
                raise ExternError(f"extern {ext.name!r} (__ksym): no kernel variable of that "
                                  f"name in the kernel's BTF (only per-CPU variables have "
                                  f"BTF)")
            ext.src, ext.imm = 0, 0
            continue
        kvar = kernel_btf.type(ids[0])
        ktype = _strip(kernel_btf, kvar.type)
        if type(ktype) is not type(target) or \
                _essential(target.name or "") != (ktype.name or ""):
            raise ExternError(f"extern {ext.name!r} (__ksym): local type "
                              f"{target.kind_name} {target.name!r} does not match the "
                              f"kernel's {ktype.kind_name} {ktype.name!r}")
        ext.src, ext.imm = 3, ids[0]


def extern_symbols(symbols: List[Any]) -> Dict[str, bool]:
    """Undefined symbols of an object and whether each is weak."""
    out: Dict[str, bool] = {}
    for sym in symbols:
        if sym.name and sym["st_shndx"] == "SHN_UNDEF":
            out[sym.name] = sym["st_info"]["bind"] == "STB_WEAK"
    return out
