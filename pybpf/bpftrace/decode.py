"""Bytes from BPF maps and event records -> :mod:`.values` values, and whole maps ->
:class:`~.output.MapData` as the printers want them (layouts: :mod:`.lower`)."""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

from . import values as V
from .output import MapData
from .types import SizedType

__all__ = ["Decoder"]

_AGG = ("count", "sum", "min", "max", "avg", "stats", "hist", "lhist")


class Decoder:
    """Decodes values of one lowered module (``maps``: the live maps by BPF name)."""

    def __init__(self, mod: Any, maps: Dict[str, Any], opts: Any) -> None:
        self.mod = mod
        self.maps = maps
        self.opts = opts
        self._ksyms: Any = None
        self._usyms: Any = None
        self._boot: Optional[int] = None

    # -- single values ----------------------------------------------------------------
    def value(self, t: SizedType, data: bytes, off: int, packed: bool = False) -> V.Value:
        """The value of type ``t`` at ``data[off:]``; integers take 8 bytes unless
        ``packed`` (tuple elements keep their own size)."""
        k = t.kind
        if k == "integer":
            size = max(t.size, 1) if packed else 8
            raw = int.from_bytes(data[off:off + size], "little")
            bits = t.bits if t.bits in (8, 16, 32, 64) else 64
            return V.Int(raw, bits, t.signed)
        if k == "pointer":
            return V.Pointer(int.from_bytes(data[off:off + 8], "little"))
        if k == "string":
            return V.Str(data[off:off + t.size].decode("latin-1"), t.size)
        if k == "tuple":
            return V.Tuple(tuple(self.value(f.type, data, off + f.offset, True)
                                 for f in t.fields))
        if k == "array":
            es = max(t.elem.size, 1)
            return V.Array(tuple(self.value(t.elem, data, off + i * es, True)
                                 for i in range(t.count)))
        if k == "record":
            return V.Record(tuple((f.name, self.value(f.type, data, off + f.offset, True))
                                  for f in t.fields))
        u64 = int.from_bytes(data[off:off + 8], "little")
        if k == "ksym":
            return self.ksym(u64)
        if k == "usym":
            pid = int.from_bytes(data[off + 8:off + 16], "little")
            return self.usym(u64, pid)
        if k in ("kstack", "ustack"):
            return self.stack(t, u64)
        if k == "username":
            import pwd
            try:
                name = pwd.getpwuid(u64 & 0xFFFFFFFF).pw_name
            except KeyError:
                name = str(u64)
            return V.Sym("username", name, data[off:off + 8])
        if k == "probe":
            names = self.mod.probe_names
            return V.Sym("probe", names[u64] if u64 < len(names) else "", data[off:off + 8])
        if k == "inet":
            af = u64
            addr = data[off + 8:off + 24]
            return V.ntop(addr[:4] if af == 2 else addr, af)
        if k == "mac_address":
            return V.macaddr(data[off:off + 6])
        if k == "timestamp":
            fmts = getattr(self.mod, "strftime_fmts", None) or []
            ns = int.from_bytes(data[off + 8:off + 16], "little")
            if self._boot is None:
                self._boot = V.boot_realtime_ns()
            return V.strftime_value(fmts[u64] if u64 < len(fmts) else "", ns, self._boot)
        if k == "strerror":
            return V.strerror_value(V.wrap(u64, 64, True))
        if k == "cgroup_path":
            filters = getattr(self.mod, "cgroup_filters", None) or []
            fi = int.from_bytes(data[off + 8:off + 16], "little")
            filt = filters[fi] if fi < len(filters) else ""
            return V.Sym("cgroup_path", cgroup_paths(u64, filt), data[off:off + 16])
        if k == "min":
            return V.Int(V.reduce_min([u64]), 64, True)
        if k == "buffer":
            n = data[off]
            return V.Buf(data[off + 1:off + 1 + n], max(t.size - 1, 0))
        return V.Int(u64, 64, True)

    def ksym(self, addr: int) -> V.Sym:
        from ..symbolize import kernel_symbols
        if self._ksyms is None:
            self._ksyms = kernel_symbols()
        f = self._ksyms.lookup(addr)
        return V.ksym(addr, f.name if f.known else None, f.offset)

    def user_resolvable(self, pid: int) -> bool:
        """Whether ``pid``'s addresses resolve now, as in bpftrace 0.17: never with
        ``BPFTRACE_NO_USER_SYMBOLS``; with the symbol cache (``-c``, ASLR off, or
        ``BPFTRACE_CACHE_USER_SYMBOLS=1``) also after the process exited, else (a fresh
        symbol table per lookup) only while it runs."""
        if self.opts.no_user_symbols:
            return False
        cache = self.opts.cache_user_symbols
        if cache is None:
            cache = self.opts.command is not None or not _aslr_enabled()
        if cache:
            return True
        try:
            os.readlink(f"/proc/{pid}/exe")
        except OSError:
            if self._usyms is not None:
                self._usyms.forget(pid)
            return False
        return True

    def usym(self, addr: int, pid: int) -> V.Sym:
        from ..symbolize import UserSymbols
        if self._usyms is None:
            self._usyms = UserSymbols()
        if not self.user_resolvable(pid):
            return V.usym(addr, pid, None)
        f = self._usyms.lookup(pid, addr)
        return V.usym(addr, pid, f.name if f.known else None, f.offset)

    def stack(self, t: SizedType, raw: int) -> V.Stack:
        kernel = t.kind == "kstack"
        sid = raw & 0xFFFFFFFF
        pid = raw >> 32
        name = f"bt_{'k' if kernel else 'u'}stack_{t.stack_limit}"[:15]
        frames: List[V.Frame] = []
        m = self.maps.get(name)
        resolve = kernel or self.user_resolvable(pid)
        if m is not None and sid < 0x80000000:
            try:
                addrs = list(m[sid])
            except (KeyError, OSError):
                addrs = []
            for a in addrs:
                if not a:
                    break
                if kernel:
                    s = self.ksym(a)
                    from ..symbolize import kernel_symbols
                    f = self._ksyms.lookup(a)
                    frames.append(V.Frame(a, f.name if f.known else None, f.offset))
                elif not resolve:
                    frames.append(V.Frame(a, None, 0, None))
                else:
                    if self._usyms is None:
                        from ..symbolize import UserSymbols
                        self._usyms = UserSymbols()
                    f = self._usyms.lookup(pid, a)
                    frames.append(V.Frame(a, f.name if f.known else None, f.offset,
                                          f.module or None))
        return V.Stack(tuple(frames), not kernel, t.stack_mode, sid, pid)

    # -- maps -------------------------------------------------------------------------
    def map_data(self, name: str) -> MapData:
        """Map ``@name`` read now."""
        lay = self.mod.layouts[name]
        m = self.maps[lay.bpf_name]
        kind = lay.kind
        entries: List[Tuple[Any, Any]] = []
        grouped: Dict[bytes, Any] = {}
        keys: Dict[bytes, tuple] = {}
        for k, v in m.items():
            kb = bytes(k) if not isinstance(k, int) else b""
            ukey = kb[:lay.key_size] if lay.keys else b""
            if ukey not in keys:
                keys[ukey] = tuple(self.value(t, ukey, off) for t, off in lay.keys)
            if kind in ("count", "sum"):
                entries.append((keys[ukey], V.reduce_sum(v, kind == "sum" and lay.value.signed)))
            elif kind == "min":
                entries.append((keys[ukey], V.reduce_min(v)))
            elif kind == "max":
                entries.append((keys[ukey], V.reduce_max(v)))
            elif kind in ("hist", "lhist"):
                idx = int.from_bytes(kb[-8:], "little")
                grouped.setdefault(ukey, {})[idx] = V.reduce_sum(v)
            elif kind in ("avg", "stats"):
                idx = int.from_bytes(kb[-8:], "little")
                cur = grouped.setdefault(ukey, [0, 0])
                cur[idx] = V.reduce_sum(v, True)
            else:
                vb = bytes(v)
                entries.append((keys[ukey], self.value(lay.value, vb, 0)))
        for ukey, val in grouped.items():
            entries.append((keys[ukey], tuple(val) if kind in ("avg", "stats") else val))
        signed = lay.value.signed if kind == "sum" else False
        return MapData(name, kind if kind in _AGG else "value", entries, signed, lay.lhist)

    def clear(self, name: str, zero: bool = False) -> None:
        """``clear(@m)`` (entries deleted) or ``zero(@m)`` (values zeroed)."""
        lay = self.mod.layouts[name]
        m = self.maps[lay.bpf_name]
        keys = [k for k, _ in m.items()]
        for k in keys:
            if lay.array or zero:
                if lay.per_cpu:
                    m[k] = [0] * m.ncpus
                else:
                    m[k] = bytes(lay.value_size)
            else:
                try:
                    del m[k]
                except KeyError:
                    pass


def _aslr_enabled() -> bool:
    try:
        with open("/proc/sys/kernel/randomize_va_space") as fh:
            return fh.read().strip() != "0"
    except OSError:
        return True


def cgroup_roots() -> List[Tuple[str, str]]:
    """The cgroup hierarchies mounted, as bpftrace names them: ``unified`` for cgroup2,
    a cgroup v1 mount by its directory's name; (name, mount point)."""
    out = []
    try:
        with open("/proc/mounts") as fh:
            for line in fh:
                parts = line.split(" ")
                if len(parts) > 1 and parts[0] in ("cgroup", "cgroup2"):
                    name = "unified" if parts[0] == "cgroup2" else \
                        os.path.basename(parts[1].rstrip("/"))
                    out.append((name, parts[1]))
    except OSError:
        pass
    return out


def cgroup_path_in(cgid: int, root: str) -> str:
    """The path of cgroup ``cgid`` under hierarchy ``root`` ("/" for the root, "" when
    absent): the directory whose inode number is the id."""
    try:
        if os.stat(root).st_ino == cgid:
            return "/"
    except OSError:
        return ""
    for d, dirs, _ in os.walk(root):
        for sub in dirs:
            full = os.path.join(d, sub)
            try:
                if os.stat(full).st_ino == cgid:
                    return full[len(root):]
            except OSError:
                return ""
    return ""


def cgroup_paths(cgid: int, filt: str = "") -> str:
    """``cgroup_path(id, filter)`` as bpftrace 0.17 prints it: ``name:path`` for every
    hierarchy whose name matches ``filter`` (``*`` wildcards; empty: all), ``unified``
    first then by name, joined by commas (hierarchies without it left out)."""
    import fnmatch
    pattern = "".join("*" if c == "*" else "[" + c + "]" if c in "[]?" else c
                      for c in filt) if filt else "*"
    roots = [(n, r) for n, r in cgroup_roots() if fnmatch.fnmatchcase(n, pattern)]
    roots.sort(key=lambda x: (x[0] != "unified", x[0].encode()))
    found = [(n, cgroup_path_in(cgid, r)) for n, r in roots]
    return ",".join(f"{n}:{p}" for n, p in found if p)
