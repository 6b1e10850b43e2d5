"""printf's batch path: one precompiled formatter per printf call site.

The general formatter (:mod:`.printf`) decodes every argument into a
:class:`~pybpf.bpftrace.values.Value`, cuts the format into pieces and runs a small C
``snprintf`` emulation per piece: exact for every conversion, but some 40 us an event.
Under a storm that is the whole budget, so the runtime (:mod:`.runtime`) asks
:func:`site_formatter` once per printf site for a function ``record bytes -> line
bytes`` that does the same work in two C calls: one precomputed
:class:`struct.Struct` unpacks the arguments straight from the record, and one
``bytes % tuple`` with a Python format derived from the site's format prints them.

The derived format is byte-identical to bpftrace 0.17's output (the general path's
rules, which :mod:`.printf` documents) because a site is only compiled when every piece
of it maps onto a Python conversion that behaves as glibc's does:

* the text before each token may hold ``%%`` (snprintf prints ``%``, so does Python),
  nothing else with a ``%``; the text after the last token is printed untouched, so its
  ``%`` are escaped; a format without arguments is a constant;
* ``%s`` of a ``string`` argument (width, ``-``, precision): the bytes up to the first
  NUL, padded with spaces as C pads them;
* ``%d %u %x %X %o`` with any length modifier (``hh h l ll j z t``), width, ``-`` and
  ``0``, but no precision: the argument is read with the width and signedness the
  conversion reads (the low 8/16/32/64 bits of the 64-bit value bpftrace passes), so
  Python formats the same number C does; an argument narrower than the conversion is
  read at its own width and sign, then sign-extended (masked to the conversion's width
  for an unsigned conversion), as bpftrace's promotion to 64 bits does;
* ``%c`` (the low byte) and ``%p`` (``0x`` + hex): a record whose value is 0 is handed
  to the general path (C prints ``(nil)`` for a null pointer, and a NUL character cuts
  the piece).

Anything else (``%r``/``%rx``/``%rh``, symbols, stacks, usernames, timestamps, inet,
integer precision, stray directives, a NUL in the format, text beyond latin-1) keeps the
general path for the whole site: :func:`site_formatter` returns None.
"""

from __future__ import annotations

import re
import struct
from typing import Any, Callable, List, Optional, Sequence, Tuple

from .printf_tokens import TOKEN_RE

__all__ = ["site_formatter", "Formatter"]

#: a compiled site: record bytes (starting with the 8-byte site id) -> output bytes
Formatter = Callable[[bytes], bytes]

_TOKEN = re.compile(r"%(-?)([0-9]*)(?:\.([0-9]+))?([a-zA-Z]+)")
#: bits a conversion reads of the 64-bit argument, by length modifier
_CONV_BITS = {"": 32, "hh": 8, "h": 16, "l": 64, "ll": 64, "j": 64, "z": 64, "t": 64}
_CODES = {8: "b", 16: "h", 32: "i", 64: "q"}


def _text_ok(text: str) -> bool:
    """Does snprintf print ``text`` (text before a token) as Python's ``%`` does:
    no ``%`` other than ``%%`` pairs?"""
    return "%" not in text.replace("%%", "")


def _int_arg(t: Any, conv: str, length: str) -> Optional[Tuple[str, Optional[int]]]:
    """(struct code, mask or None) reading an integer or pointer argument of type ``t``
    as conversion ``length + conv`` reads it, or None when the batch path cannot."""
    if t.kind == "pointer":
        tb, ts = 64, False
    elif t.kind == "integer":
        tb = t.bits if t.bits in (8, 16, 32, 64) else 64
        ts = bool(t.signed)
    else:
        return None
    if conv == "c":
        cb, cs = 8, False
    elif conv == "p":
        cb, cs = 64, False
    else:
        cb, cs = _CONV_BITS[length], conv == "d"
    if cb <= tb:
        code = _CODES[cb]
        return (code if cs else code.upper()), None
    code = _CODES[tb]
    if not ts:
        return code.upper(), None
    return code, (None if cs else (1 << cb) - 1)


def _plan(fmt: str, args: Sequence[Tuple[Any, int]]
          ) -> Optional[Tuple[bytes, str, List[str], List[int]]]:
    """(Python format, struct format, one expression per argument over ``v0``...,
    indices of the arguments whose 0 value needs the general path) or None."""
    if "\0" in fmt:
        return None
    try:
        fmt.encode("latin-1")
    except UnicodeEncodeError:
        return None
    tokens = list(TOKEN_RE.finditer(fmt))
    if len(tokens) != len(args):
        return None
    py: List[str] = []
    layout: List[str] = ["<8x"]
    pos = 8                                     # the site id
    exprs: List[str] = []
    guards: List[int] = []
    last = 0
    for i, (m, (t, off)) in enumerate(zip(tokens, args)):
        text = fmt[last:m.start()]
        last = m.end()
        if not _text_ok(text):
            return None
        py.append(text)
        tm = _TOKEN.fullmatch(m.group(0))
        if tm is None:
            return None
        left, width, prec, conv_full = tm.groups()
        conv = conv_full[-1]
        length = conv_full[:-1]
        if off < pos:
            return None
        if conv == "s" and length == "":
            if t.kind != "string" or t.size <= 0:
                return None
            code, mask = f"{t.size}s", None
            exprs.append(f'v{i}.split(b"\\0", 1)[0]')
            spec = left + width + (f".{prec}" if prec is not None else "") + "s"
        elif conv in "duxXopc" and length in _CONV_BITS and (
                conv not in "pc" or length == ""):
            if prec is not None:
                return None
            got = _int_arg(t, conv, length)
            if got is None:
                return None
            code, mask = got
            exprs.append(f"v{i} & {mask:#x}" if mask is not None else f"v{i}")
            if conv in "pc":
                guards.append(i)
            pyconv = {"u": "d", "p": "x"}.get(conv, conv)
            spec = left + ("#" if conv == "p" else "") + width + pyconv
        else:
            return None                         # %r, %rx, %rh
        if off > pos:
            layout.append(f"{off - pos}x")
        layout.append(code)
        pos = off + struct.calcsize("<" + code)
        py.append("%" + spec)
    tail = fmt[last:]
    py.append(tail.replace("%", "%%") if args else tail)
    return "".join(py).encode("latin-1"), "".join(layout), exprs, guards


def site_formatter(fmt: str, args: Sequence[Tuple[Any, int]],
                   general: Callable[[bytes], bytes]) -> Optional[Formatter]:
    """The batch formatter of a printf site whose format is ``fmt`` and whose arguments
    are ``(type, offset in the record)``, or None when the site needs the general path
    (see the module docstring). ``general(record)`` formats one record the general way;
    the formatter calls it for the records it cannot print itself (a 0 for ``%c`` or
    ``%p``)."""
    if not args:
        if "\0" in fmt:
            return None
        try:
            const = fmt.encode("latin-1")
        except UnicodeEncodeError:
            return None
        return lambda rec: const
    plan = _plan(fmt, args)
    if plan is None:
        return None
    pyfmt, layout, exprs, guards = plan
    names = ", ".join(f"v{i}" for i in range(len(exprs)))
    lines = ["def _site(rec):", f"    {names}, = _unpack(rec)"]
    for i in guards:
        lines.append(f"    if not v{i}:")
        lines.append("        return _general(rec)")
    lines.append(f"    return _fmt % ({', '.join(exprs)},)")
    scope = {"_unpack": struct.Struct(layout).unpack_from, "_general": general,
             "_fmt": pyfmt}
    exec(compile("\n".join(lines), f"<printf site {fmt!r}>", "exec"), scope)
    return scope["_site"]
