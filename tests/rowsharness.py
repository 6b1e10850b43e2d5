"""Offline identity checks of a tool's batch printer (``mod.on(..., rows=...)``): odd
records are made with the tool's event Struct, decoded the old way (``from_bytes``, one
instance per event) for the reference printer the test keeps (the tool's former
per-event f-strings), and as rows the new way for the batch printer; both outputs are
compared byte for byte. The clock is frozen so that time columns agree."""

import importlib
import struct
import sys
import time

from progrun import ROOT

#: a wall-clock instant with a non-zero millisecond part (exitsnoop prints it)
FROZEN = 1700000000.987


def program(name):
    """The module ``programs/NAME.py``, imported from this checkout."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    return importlib.import_module(f"programs.{name}")


def freeze_clock(monkeypatch, when=FROZEN):
    """``time.time()`` is ``when``, and ``time.strftime(fmt)`` formats it (local time)."""
    real = time.strftime
    monkeypatch.setattr(time, "time", lambda: when)
    monkeypatch.setattr(time, "strftime",
                        lambda fmt, t=None: real(fmt, time.localtime(when) if t is None else t))


def after_nul(raw, event, field, junk=b"junk!"):
    """``raw`` with ``junk`` written just after the NUL that ends the ``char[N]`` field
    ``field`` (bytes a program may leave there), when it fits."""
    f = event.__pybpf_layout__.field(field)
    size = next(code for name, _, code in event.row_fields() if name == field)
    end = f.offset + int(size[:-1])
    cut = raw.find(b"\0", f.offset, end)
    if cut < 0 or cut + 1 + len(junk) > end:
        return raw
    return raw[:cut + 1] + junk + raw[cut + 1 + len(junk):]


def as_written(lines):
    """The bytes :func:`pybpf.tooling.write_lines` writes for ``lines`` (str or bytes)."""
    if not lines:
        return b""
    if isinstance(lines[0], str):
        return ("\n".join(lines) + "\n").encode("utf-8")
    return (b"\n".join(lines) + b"\n").decode("utf-8", "replace").encode("utf-8")


def batch_output(monkeypatch, module, show, raws, items=None, batch=97):
    """What the batch printer ``show`` writes for the records ``raws`` handed over in
    batches of ``batch`` rows (``items``: the rows= of the tool, None for every field)."""
    written = []
    monkeypatch.setattr(module, "write_lines", written.extend)
    event = module.events.event
    fmt = struct.Struct(event.row_format(items))
    for k in range(0, len(raws), batch):
        show([fmt.unpack(r) for r in raws[k:k + batch]])
    return as_written(written)


def reference_output(show_one, event, raws):
    """What a per-event printer ``show_one(e) -> str`` (one ``print`` per event) gives
    for ``raws``, decoded one by one with ``event.from_bytes``."""
    out = []
    for raw in raws:
        line = show_one(event.from_bytes(raw))
        if line is not None:
            out.append(line + "\n")
    return "".join(out).encode("utf-8")


#: command names as a program may send them: non-UTF-8, a cut multi-byte sequence,
#: non-ASCII, empty, 15 bytes, 16 bytes with no NUL, control characters
ODD_COMMS = [b"sh", b"w\xc3\xa9rk\xff", b"x\xe2\x82", "é".encode() * 8, b"", b"a" * 15,
             b"b" * 16, b"tab\tnl\n"]
