"""The values bpftrace 0.17's runtime prints, as the runtime decodes them.

Every value is an immutable object that knows its bpftrace type and how bpftrace 0.17
turns it into text (:meth:`Value.text`), into a JSON fragment (:meth:`Value.json`),
into a map-key label (:meth:`Value.key_text`) and into the bytes a BPF map key holds
(:meth:`Value.key_bytes`, which decides the order of hist/stats maps). Text is kept as
*byte strings in latin-1* (one character per byte), as the front end does: bpftrace
passes bytes through untouched, so the final writer encodes with latin-1.

The kinds:

* :class:`Int` -- an integer of 8/16/32/64 bits, signed or not (bpftrace's
  ``int8``...``uint64``; ``count``/``sum``/``min``/``max`` results are 64-bit ints);
* :class:`Str` -- ``string[N]`` (text up to the first NUL);
* :class:`Buf` -- ``buf`` (``buffer[N]``: bytes and their length);
* :class:`Tuple`, :class:`Array` (integer arrays), :class:`Record` (struct values);
* :class:`Pointer` -- a typed pointer (printed as an integer, as a key in hex);
* :class:`Sym` -- everything bpftrace resolves to text in user space: ``ksym``,
  ``usym``, ``inet`` (ntop), ``username``, ``probe``, ``timestamp`` (strftime),
  ``mac_address``, ``cgroup_path``, ``strerror``; with constructors
  :func:`ksym`, :func:`usym`, :func:`ntop`, :func:`macaddr`, :func:`strftime_value`,
  :func:`strerror_value`;
* :class:`Stack` -- ``kstack``/``ustack`` as symbolized :class:`Frame` lists in
  ``bpftrace`` or ``perf`` mode.

Also here: the bucket functions of bpftrace 0.17's generated code (:func:`hist_bucket`,
:func:`lhist_bucket`) and its per-CPU reductions (:func:`reduce_sum`,
:func:`reduce_min`, :func:`reduce_max`), which the runtime applies to raw map values.
"""

from __future__ import annotations

import os
import re
import struct
import time as _time
from typing import Dict, Optional, Sequence, Tuple as TTuple

from .._records import record

__all__ = [
    "Value", "Int", "Str", "Buf", "Tuple", "Array", "Record", "Pointer", "Sym", "Frame",
    "Stack", "ksym", "usym", "ntop", "macaddr", "strftime_value", "strftime_text",
    "strerror_value", "boot_realtime_ns", "hex_format_buffer", "hist_bucket", "lhist_bucket",
    "reduce_sum", "reduce_min", "reduce_max", "c_div", "json_escape", "wrap",
    "QUOTED_KINDS", "STRING_SIZE",
]

M64 = (1 << 64) - 1
#: size of bpftrace's buffer for time()/strftime() text (``STRING_SIZE``)
STRING_SIZE = 1024
#: the kinds that bpftrace 0.17 quotes in JSON output (``is_quoted_type``)
QUOTED_KINDS = frozenset({"kstack", "ustack", "ksym", "usym", "inet", "username",
                          "string", "buffer", "probe"})


def c_div(a: int, b: int) -> int:
    """C integer division (truncates toward zero)."""
    q = abs(a) // abs(b)
    return q if (a >= 0) == (b >= 0) else -q


def wrap(value: int, bits: int, signed: bool) -> int:
    """``value`` truncated to ``bits`` bits and read as signed or unsigned."""
    mask = (1 << bits) - 1
    value &= mask
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return value


def _json_table() -> Dict[int, str]:
    table = {ord('"'): '\\"', ord("\\"): "\\\\", ord("\n"): "\\n", ord("\r"): "\\r",
             ord("\t"): "\\t"}
    for c in range(256):
        if c not in table and (c <= 0x1F or c >= 0x80):
            table[c] = "\\u%04x" % c if c <= 0x1F else "\\u%x" % ((c - 256) & 0xFFFFFFFF)
    return table


#: :func:`json_escape`'s replacement of each byte that needs one (as ``str.translate``
#: takes it)
_JSON_TABLE = _json_table()


def json_escape(text: str) -> str:
    """``text`` escaped as bpftrace 0.17's ``json_escape`` does: ``"`` ``\\`` and
    ``\\n \\r \\t`` by backslash; every other byte below 0x20 *and every byte from 0x80*
    (bpftrace tests a signed ``char``) as ``\\u`` and the hex of the sign-extended
    byte, e.g. ``\\u0001`` and ``\\uffffffc3``."""
    if text.isascii() or max(text) <= "\xff":      # bytes as latin-1: one table pass
        return text.translate(_JSON_TABLE)
    out = []
    for ch in text:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif c <= 0x1F:
            out.append("\\u%04x" % c)
        elif c >= 0x80:
            out.append("\\u%x" % ((c - 256) & 0xFFFFFFFF))
        else:
            out.append(ch)
    return "".join(out)


def hex_format_buffer(data: bytes, keep_ascii: bool = True, escape_hex: bool = True) -> str:
    """bpftrace's rendering of buffer bytes: printable ASCII kept (when ``keep_ascii``),
    other bytes as ``\\xNN`` (``escape_hex``) or as space-separated ``NN`` pairs."""
    out = []
    n = len(data)
    for i, b in enumerate(data):
        if keep_ascii and 32 <= b <= 126:
            out.append(chr(b))
        elif escape_hex:
            out.append("\\x%02x" % b)
        else:
            out.append("%02x" % b if i == n - 1 else "%02x " % b)
    return "".join(out)


class Value:
    """Base of the runtime values. ``kind`` is bpftrace's type name (``integer``,
    ``string``, ``buffer``, ``tuple``, ``array``, ``record``, ``pointer``, ``kstack``,
    ``ksym``...)."""

    kind = "none"

    def text(self) -> str:
        """The value as bpftrace prints it in text output (a map value, print())."""
        raise NotImplementedError

    def json(self) -> str:
        """The value as a fragment of bpftrace 0.17's JSON output."""
        t = self.text()
        return '"' + json_escape(t) + '"' if self.kind in QUOTED_KINDS else t

    def key_text(self) -> str:
        """The value as one element of a map key label (``@m[HERE, ...]``)."""
        return self.text()

    def key_bytes(self) -> bytes:
        """The bytes the value takes in a BPF map key (ordering of hist/stats maps)."""
        raise NotImplementedError

    def printf_arg(self):
        """What printf receives: an ``int`` (the 64-bit pattern) or a ``str``."""
        return self.text()


@record(frozen=True)
class Int(Value):
    """An integer of ``bits`` (8, 16, 32 or 64) bits; ``value`` is the mathematical
    value, wrapped into range on construction."""

    value: int
    bits: int = 64
    signed: bool = True
    kind = "integer"

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", wrap(self.value, self.bits, self.signed))

    def text(self) -> str:
        return str(self.value)

    def key_text(self) -> str:
        # map keys print signed, whatever the declared sign
        return str(wrap(self.value, self.bits, True))

    def key_bytes(self) -> bytes:
        return (self.value & ((1 << self.bits) - 1)).to_bytes(self.bits // 8, "little")

    def printf_arg(self) -> int:
        # printf arguments are promoted to 64 bits (sign- or zero-extended)
        return self.value & M64


@record(frozen=True)
class Pointer(Value):
    """A pointer value (``(struct x *)arg0``): an integer in printf and print(), hex as
    a map key."""

    value: int
    kind = "pointer"

    def text(self) -> str:
        return str(wrap(self.value, 64, True))

    def key_text(self) -> str:
        return "0x%x" % (self.value & M64)

    def key_bytes(self) -> bytes:
        return (self.value & M64).to_bytes(8, "little")

    def printf_arg(self) -> int:
        return self.value & M64


@record(frozen=True)
class Str(Value):
    """``string[size]``: ``data`` is the latin-1 text, cut at its first NUL."""

    data: str
    size: int = 64
    kind = "string"

    def __post_init__(self) -> None:
        d = self.data.split("\0", 1)[0][:self.size]
        object.__setattr__(self, "data", d)

    def text(self) -> str:
        return self.data

    def key_bytes(self) -> bytes:
        return self.data.encode("latin-1").ljust(self.size, b"\0")[:self.size]


@record(frozen=True)
class Buf(Value):
    """``buf(p, n)``: ``data`` the bytes captured (its length is the length byte) in a
    buffer of ``capacity`` bytes."""

    data: bytes
    capacity: int = 0
    kind = "buffer"

    def __post_init__(self) -> None:
        if self.capacity < len(self.data):
            object.__setattr__(self, "capacity", len(self.data))

    def text(self) -> str:
        return hex_format_buffer(self.data)

    def key_text(self) -> str:
        # a key shows the whole capacity, whatever the length
        return hex_format_buffer(self.data.ljust(self.capacity, b"\0"))

    def key_bytes(self) -> bytes:
        return bytes([len(self.data) & 0xFF]) + self.data.ljust(self.capacity, b"\0")

    def printf_arg(self) -> bytes:  # type: ignore[override]
        return self.data


@record(frozen=True)
class Tuple(Value):
    """A tuple ``(a, b, ...)``."""

    elems: TTuple[Value, ...]
    kind = "tuple"

    def text(self) -> str:
        return "(" + ", ".join(e.text() for e in self.elems) + ")"

    def json(self) -> str:
        return "[" + ",".join(e.json() for e in self.elems) + "]"

    def key_bytes(self) -> bytes:
        return b"".join(e.key_bytes() for e in self.elems)


@record(frozen=True)
class Array(Value):
    """An integer array (``int32[4]``...)."""

    elems: TTuple[Value, ...]
    kind = "array"

    def text(self) -> str:
        return "[" + ",".join(e.text() for e in self.elems) + "]"

    def json(self) -> str:
        return "[" + ",".join(e.json() for e in self.elems) + "]"

    def key_text(self) -> str:
        return "[" + ",".join(e.key_text() for e in self.elems) + "]"

    def key_bytes(self) -> bytes:
        return b"".join(e.key_bytes() for e in self.elems)


@record(frozen=True)
class Record(Value):
    """A struct value: ``fields`` are (name, value) pairs."""

    fields: TTuple[TTuple[str, Value], ...]
    kind = "record"

    def text(self) -> str:
        return "{ " + ", ".join(f".{n} = {v.text()}" for n, v in self.fields) + " }"

    def json(self) -> str:
        return "{ " + ", ".join(f'"{n}": {v.json()}' for n, v in self.fields) + " }"

    def key_text(self) -> str:
        return "{" + ",".join(f".{n}={v.key_text()}" for n, v in self.fields) + "}"

    def key_bytes(self) -> bytes:
        return b"".join(v.key_bytes() for _, v in self.fields)


@record(frozen=True)
class Sym(Value):
    """A value bpftrace resolves to text in user space, already resolved: ``kind`` is
    ``ksym``, ``usym``, ``inet``, ``username``, ``probe``, ``timestamp``,
    ``mac_address``, ``cgroup_path`` or ``strerror``; ``raw`` is its key bytes."""

    kind: str = "string"  # type: ignore[misc]
    value: str = ""
    raw: bytes = b""

    def text(self) -> str:
        return self.value

    def key_bytes(self) -> bytes:
        return self.raw


def ksym(addr: int, name: Optional[str], offset: int = 0, show_offset: bool = False) -> Sym:
    """A ``ksym`` value: the symbol ``name`` (``+offset`` when ``show_offset``), or the
    address in hex when it did not resolve."""
    return Sym("ksym", _sym_text(addr, name, offset, show_offset, None),
               (addr & M64).to_bytes(8, "little"))


def usym(addr: int, pid: int, name: Optional[str], offset: int = 0,
         show_offset: bool = False, module: Optional[str] = None) -> Sym:
    """A ``usym`` value (``module`` is shown, as `` (module)``, only when given)."""
    return Sym("usym", _sym_text(addr, name, offset, show_offset, module),
               (addr & M64).to_bytes(8, "little") + (pid & M64).to_bytes(8, "little"))


def _sym_text(addr: int, name: Optional[str], offset: int, show_offset: bool,
              module: Optional[str]) -> str:
    if name is not None:
        text = name + (f"+{offset}" if show_offset else "")
        if module is not None:
            text += f" ({module})"
        return text
    text = "0x%x" % addr if addr else "0"
    if module is not None:
        text += " ([unknown])"
    return text


def ntop(addr: bytes, af: Optional[int] = None) -> Sym:
    """``ntop()``: 4 bytes print as IPv4, 16 as IPv6 (``af`` overrides, 2 or 10); an
    unknown family prints as an empty string, as in bpftrace."""
    import socket                   # only here: not imported on every start-up
    if af is None:
        af = socket.AF_INET if len(addr) == 4 else socket.AF_INET6
    if af == socket.AF_INET:
        text = socket.inet_ntop(af, bytes(addr[:4]).ljust(4, b"\0"))
    elif af == socket.AF_INET6:
        text = socket.inet_ntop(af, bytes(addr[:16]).ljust(16, b"\0"))
    else:
        text = ""
    return Sym("inet", text, (af & M64).to_bytes(8, "little") + bytes(addr).ljust(16, b"\0"))


def macaddr(addr: bytes) -> Sym:
    """``macaddr()``: six bytes as ``AA:BB:CC:DD:EE:FF``."""
    return Sym("mac_address", ":".join("%02X" % b for b in addr[:6]), bytes(addr[:6]))


def strerror_value(errnum: int) -> Sym:
    """``strerror(n)``: the C library's message for ``n``."""
    return Sym("strerror", os.strerror(errnum), (errnum & M64).to_bytes(8, "little"))


_USEC = re.compile("%f")


def strftime_text(fmt: str, nsecs_since_boot: int, boottime_ns: int) -> str:
    """``strftime(fmt, ns)`` as bpftrace 0.17 renders it: the wall time is
    ``boottime + ns`` (seconds computed through a double, as bpftrace does), in local
    time; every ``%f`` becomes the six-digit microseconds first. ``(?)`` when the text
    would not fit bpftrace's 1024-byte buffer."""
    bt_sec, bt_nsec = divmod(boottime_ns, 1_000_000_000)
    secs = int(bt_sec + (bt_nsec + nsecs_since_boot) / 1e9)
    us = ((bt_nsec + nsecs_since_boot) % 1_000_000_000) // 1000
    fmt = _USEC.sub("%06d" % us, fmt)
    return _c_strftime(fmt, _time.localtime(secs))


def _c_strftime(fmt: str, tm: _time.struct_time) -> str:
    if not fmt:
        return "(?)"
    try:
        text = _time.strftime(fmt, tm)
    except (ValueError, UnicodeError):
        return "(?)"
    if not text or len(text.encode("utf-8", "surrogateescape")) >= STRING_SIZE:
        return "(?)"
    return text


def boot_realtime_ns() -> int:
    """The wall-clock time of boot in ns, as bpftrace 0.17 measures it once at start:
    of five ``REALTIME, BOOTTIME, REALTIME`` readings, the one whose two REALTIME reads
    are closest (and in one second), taking their mean minus BOOTTIME."""
    best, delta_best = None, None
    for _ in range(5):
        before = _time.clock_gettime_ns(_time.CLOCK_REALTIME)
        boot = _time.clock_gettime_ns(_time.CLOCK_BOOTTIME)
        after = _time.clock_gettime_ns(_time.CLOCK_REALTIME)
        if before // 10 ** 9 != after // 10 ** 9 or after < before:
            continue
        if delta_best is None or after - before < delta_best:
            delta_best = after - before
            sec = after // 10 ** 9
            best = sec * 10 ** 9 + ((before % 10 ** 9) + (after % 10 ** 9)) // 2 - boot
    if best is None:
        best = _time.clock_gettime_ns(_time.CLOCK_REALTIME) - \
            _time.clock_gettime_ns(_time.CLOCK_BOOTTIME)
    return best


def strftime_value(fmt: str, nsecs_since_boot: int, boottime_ns: int) -> Sym:
    """A ``timestamp`` value (``strftime()``)."""
    return Sym("timestamp", strftime_text(fmt, nsecs_since_boot, boottime_ns),
               struct.pack("<IIQ", 0, 0, nsecs_since_boot & M64))


@record(frozen=True)
class Frame:
    """One stack frame: its address and, when it resolved, symbol ``name`` with
    ``offset``; ``module`` is the file of a user frame (shown in perf mode)."""

    addr: int
    name: Optional[str] = None
    offset: int = 0
    module: Optional[str] = None


@record(frozen=True)
class Stack(Value):
    """``kstack``/``ustack``: ``frames`` innermost first, ``mode`` ``bpftrace`` or
    ``perf``; ``stack_id`` and ``pid`` make its map-key bytes. ``indent`` is 8 for a
    value and 4 for a map key (bpftrace's choice)."""

    frames: TTuple[Frame, ...]
    user: bool = False
    mode: str = "bpftrace"
    stack_id: int = 0
    pid: int = 0

    @property
    def kind(self) -> str:  # type: ignore[override]
        return "ustack" if self.user else "kstack"

    def render(self, indent: int) -> str:
        """The stack's text: a newline, then one line per frame; nothing at all when
        there is no stack (a kstack sampled in user mode: bpftrace prints ``@[]``)."""
        if not self.frames or self.frames[0].addr == 0:
            return ""
        lines = ["\n"]
        for f in self.frames:
            if f.addr == 0:
                break
            if self.user:
                sym = _sym_text(f.addr, f.name, f.offset, True,
                                (f.module or "") if self.mode == "perf" else None)
            else:
                sym = _sym_text(f.addr, f.name, f.offset, True, None)
            if self.mode == "perf":
                lines.append("\t%x %s\n" % (f.addr, sym))
            else:
                lines.append(" " * indent + sym + "\n")
        return "".join(lines)

    def text(self) -> str:
        return self.render(8)

    def key_text(self) -> str:
        return self.render(4)

    def key_bytes(self) -> bytes:
        return (((self.pid & 0xFFFFFFFF) << 32) | (self.stack_id & 0xFFFFFFFF)).to_bytes(
            8, "little")


# --- the arithmetic of bpftrace 0.17's generated code and its reductions ------------

def hist_bucket(value: int) -> int:
    """The ``hist()`` bucket index bpftrace 0.17's code computes for a 64-bit value:
    0 for negatives, 1 for zero, then 2 + floor(log2) saturating at 33 (its shift
    ladder only reaches 31)."""
    value = wrap(value, 64, True)
    if value < 0:
        return 0
    if value == 0:
        return 1
    result = 2
    for i in range(4, -1, -1):
        shift = (1 if value >= (1 << (1 << i)) else 0) << i
        value >>= shift
        result += shift
    return result


def lhist_bucket(value: int, lo: int, hi: int, step: int) -> int:
    """The ``lhist(value, lo, hi, step)`` bucket: 0 below ``lo``, the overflow bucket
    ``1 + (hi-lo)/step`` above ``hi``, else ``1 + (value-lo)/step`` (unsigned
    division, as generated)."""
    value = wrap(value, 64, True)
    if value < lo:
        return 0
    if value > hi:
        return 1 + ((hi - lo) & M64) // step
    return 1 + ((value - lo) & M64) // step


def reduce_sum(per_cpu: Sequence[int], signed: bool = False) -> int:
    """Sum of per-CPU 64-bit slots, wrapped to 64 bits (count, sum, hist buckets)."""
    return wrap(sum(per_cpu), 64, signed)


def reduce_min(per_cpu: Sequence[int]) -> int:
    """The printed value of a ``min()`` map from its per-CPU slots: bpftrace 0.17 stores
    ``0xffffffff - v`` and undoes it here (so only 32-bit values round-trip)."""
    best = 0
    for v in per_cpu:
        v = wrap(v, 64, True)
        if v > best:
            best = v
    if best == 0:
        return 0
    if 0xFFFFFFFF - best <= 0:
        return -(best - 0xFFFFFFFF)
    return 0xFFFFFFFF - best


def reduce_max(per_cpu: Sequence[int]) -> int:
    """The printed value of a ``max()`` map: the largest slot, compared unsigned."""
    best = 0
    for v in per_cpu:
        if v & M64 > best:
            best = v & M64
    return best
