"""printf() as bpftrace 0.17 formats it, and the checks its semantic pass makes.

How bpftrace 0.17 does it (the behaviour reproduced here, byte for byte):

* A *conversion token* is what this pattern finds, left to right:
  ``%``, an optional ``-``, digits, an optional ``.digits``, then one of
  ``s r rx rh c`` or ``[hh|h|l|ll|j|z|t]`` + ``d u o x X p`` (:data:`FORMAT_TYPES`).
  Nothing else is a token: ``%i``, ``%%``, ``%+d``, ``% d``, ``%#x``, ``%ls`` are plain
  text to this scan (``0`` as a flag works because it reads as a width digit).
* The check (:func:`check_format`) counts tokens against arguments and matches each
  token's type (``string``, ``buffer`` or ``integer``; symbols, usernames, inet, stacks,
  timestamps... count as strings and pointers as integers), with bpftrace's messages.
* At run time the format is cut after each token; every piece (the text before a token
  and the token) goes through C ``snprintf`` with that one argument, so ``%%`` and stray
  directives *in those pieces* are interpreted by the C library, while the text after the
  last token, or the whole format when there are no arguments, is printed untouched
  (``printf("100%%\\n")`` prints ``100%%``). A piece is cut at the first NUL it produced
  (``%c`` of 0 prints nothing).
* Integer arguments reach snprintf as 64-bit values: ``%d %u %x %o %c`` read the low 32
  bits, ``%hd``/``%hhd`` 16/8 bits, ``l ll j z t`` all 64; ``%p`` prints ``0x...`` or
  ``(nil)``. ``%r`` prints a buffer with printable ASCII kept and ``\\xNN`` escapes,
  ``%rx`` escapes every byte, ``%rh`` prints ``NN NN``.

A stray argument-consuming directive before a token (``"%i %d"``) makes bpftrace read an
undefined vararg; here the first directive of a piece takes the argument and later ones
take 0 -- bpftrace's own output is not reproducible there.

Text is latin-1 (one character per byte), as everywhere in :mod:`pybpf.bpftrace`.
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence, Union

from .printf_tokens import DEBUGF_FORMAT_TYPES, FORMAT_TYPES, TOKEN_RE
from .values import M64, Value, hex_format_buffer, wrap

__all__ = ["FORMAT_TYPES", "DEBUGF_FORMAT_TYPES", "FormatStringError", "check_format",
           "FormatString", "format_printf", "c_format"]


# what validate_format_string treats as a string or an integer argument
_AS_STRING = frozenset({"ksym", "usym", "probe", "username", "kstack", "ustack", "inet",
                        "timestamp", "mac_address", "cgroup_path", "strerror"})
PRINTK_MAX_ARGS = 3


class FormatStringError(ValueError):
    """A format string bpftrace's semantic pass refuses; ``message`` is bpftrace 0.17's
    text (e.g. ``printf: Not enough arguments for format string (1 supplied, 2
    expected)``), reported at the call's location."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def diagnostic(self, loc):
        """This error as a located :class:`~pybpf.bpftrace.errors.Diagnostic`."""
        from .errors import Diagnostic
        return Diagnostic(loc, self.message)


def check_format(fmt: str, arg_kinds: Sequence[str], func: str = "printf") -> None:
    """Raise :class:`FormatStringError` when bpftrace 0.17 refuses ``func(fmt, args)``
    (``func`` is printf, system, cat or debugf); ``arg_kinds`` are the arguments'
    bpftrace type names (``integer``, ``string``, ``buffer``, ``pointer``, ``ksym``,
    ``tuple``...)."""
    tokens = [m.group(0) for m in TOKEN_RE.finditer(fmt)]
    nargs, ntok = len(arg_kinds), len(tokens)
    if nargs < ntok:
        raise FormatStringError(f"{func}: Not enough arguments for format string "
                                f"({nargs} supplied, {ntok} expected)")
    if nargs > ntok:
        raise FormatStringError(f"{func}: Too many arguments for format string "
                                f"({nargs} supplied, {ntok} expected)")
    if func == "debugf" and nargs > PRINTK_MAX_ARGS:
        raise FormatStringError(f"{func}: Cannot use more than {PRINTK_MAX_ARGS} "
                                f"conversion specifiers")
    table = DEBUGF_FORMAT_TYPES if func == "debugf" else FORMAT_TYPES
    for kind, tok in zip(arg_kinds, tokens):
        kind = "string" if kind in _AS_STRING else "integer" if kind == "pointer" else kind
        conv = tok[1:].lstrip("-").lstrip("0123456789.")
        want = table.get(conv)
        if want is None:
            raise FormatStringError(f"{func}: Unknown format string token: %{conv}")
        if kind != want:
            raise FormatStringError(f"{func}: %{conv} specifier expects a value of type "
                                    f"{want} ({kind} supplied)")


Arg = Union[int, str, bytes, Value]


class FormatString:
    """A printf/system/cat format as bpftrace 0.17 cuts it (``parts``: each piece ends
    with its token; a last piece holds the text after the last token)."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.parts: List[str] = []
        last = 0
        for m in TOKEN_RE.finditer(fmt):
            self.parts.append(fmt[last:m.end()])
            last = m.end()
        if last != len(fmt):
            self.parts.append(fmt[last:])

    def format(self, args: Sequence[Arg]) -> str:
        """The text bpftrace prints for these arguments (ints are 64-bit patterns or
        Python ints, strings latin-1 ``str``, buffers ``bytes``, or :class:`Value`)."""
        out = []
        i = 0
        for i, arg in enumerate(args):
            part = self.parts[i]
            if isinstance(arg, Value):
                arg = arg.printf_arg()
            pct = part.rfind("%")
            tail = part[pct:] if pct >= 0 else ""
            if tail in ("%r", "%rx", "%rh"):
                data = arg if isinstance(arg, (bytes, bytearray)) else \
                    str(arg).encode("latin-1", "replace")
                arg = hex_format_buffer(bytes(data), keep_ascii=tail == "%r",
                                        escape_hex=tail != "%rh")
                part = re.sub(r"%r[x|h]?", "%s", part)
            elif isinstance(arg, (bytes, bytearray)):
                arg = hex_format_buffer(bytes(arg))
            out.append(c_format(part, arg))
        if args:
            i += 1
        if i < len(self.parts):
            out.append(self.parts[i])
        return "".join(out)


def format_printf(fmt: str, args: Sequence[Arg]) -> str:
    """``printf(fmt, args...)`` as bpftrace 0.17 prints it."""
    return FormatString(fmt).format(args)


# --- the C library's snprintf, for one argument ---------------------------------------

_DIRECTIVE = re.compile(r"%([-+ #0'I]*)(\*|[0-9]+)?(?:\.(\*|[0-9]*))?"
                        r"(hh|h|ll|l|L|q|j|z|Z|t)?(.?)", re.S)
_INT_CONVS = "diouxXcp"
_BITS = {"hh": 8, "h": 16, None: 32}


def c_format(fmt: str, arg: Union[int, str, None]) -> str:
    """glibc ``snprintf(fmt, arg)`` for a format whose directives take at most one
    argument (later argument-taking directives read 0), cut at the first NUL."""
    out = []
    pos = 0
    used = False
    while True:
        j = fmt.find("%", pos)
        if j < 0:
            out.append(fmt[pos:])
            break
        out.append(fmt[pos:j])
        m = _DIRECTIVE.match(fmt, j)
        assert m is not None
        flags, width, prec, length, conv = m.groups()
        pos = m.end()
        if conv == "":
            break                                   # a lone '%' at the end
        if conv == "%":
            out.append("%")
            continue
        if conv not in _INT_CONVS and conv != "s":
            # glibc prints an unknown directive as written, minus its length modifier
            out.append(fmt[j:m.end()].replace(length or "\0", "", 1) if length
                       else fmt[j:m.end()])
            continue
        value = arg if not used else (0 if conv != "s" else "")
        used = True
        w = 0
        if width == "*":
            w = 0
        elif width:
            w = int(width)
        p: Optional[int] = None
        if prec is not None:
            p = 0 if prec in ("", "*") else int(prec)
        out.append(_one(conv, flags, w, p, length, value))
    text = "".join(out)
    nul = text.find("\0")
    return text if nul < 0 else text[:nul]


def _pad(body: str, width: int, left: bool) -> str:
    if len(body) >= width:
        return body
    return body.ljust(width) if left else body.rjust(width)


def _one(conv: str, flags: str, width: int, prec: Optional[int], length: Optional[str],
         value) -> str:
    left = "-" in flags
    if conv == "s":
        if not isinstance(value, str):
            value = "(null)" if not value else str(value)
        if prec is not None:
            value = value[:prec]
        return _pad(value, width, left)
    if isinstance(value, str):
        value = 0                                   # undefined in C; keep it printable
    pattern = int(value) & M64
    if conv == "c":
        return _pad(chr(pattern & 0xFF), width, left)
    alt = "#" in flags
    is_ptr = conv == "p"
    if is_ptr:
        if pattern == 0:
            return _pad("(nil)", width, left)
        conv, alt, bits = "x", True, 64
    else:
        bits = _BITS.get(length, 64)
    signed = conv in "di"
    v = wrap(pattern, bits, signed)
    mag = abs(v)
    if conv in "diu":
        digits = str(mag)
    elif conv == "o":
        digits = "%o" % mag
    elif conv == "x":
        digits = "%x" % mag
    else:
        digits = "%X" % mag
    if prec == 0 and v == 0:
        digits = ""
    if prec is not None:
        digits = digits.rjust(prec, "0")
    prefix = ""
    if alt and conv == "o" and not digits.startswith("0"):
        digits = "0" + digits
    elif alt and conv in "xX" and v != 0:
        prefix = "0" + conv
    if signed or is_ptr:
        sign = "-" if v < 0 else "+" if "+" in flags else " " if " " in flags else ""
    else:
        sign = ""
    head = sign + prefix
    if width > len(head) + len(digits) and "0" in flags and not left and prec is None:
        digits = digits.rjust(width - len(head), "0")
    return _pad(head + digits, width, left)
