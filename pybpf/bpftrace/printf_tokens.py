"""The conversion tokens of bpftrace 0.17's printf: what its format scan finds
(:data:`TOKEN_RE`) and the argument type each wants (:data:`FORMAT_TYPES`). Kept apart
from :mod:`.printf` (the checks and the general formatter) because a cached program's
start needs only these, to plan its fast formatters (:mod:`.printf_batch`)."""

from __future__ import annotations

import re

__all__ = ["FORMAT_TYPES", "DEBUGF_FORMAT_TYPES", "TOKEN_RE"]

_LENGTHS = ("", "hh", "h", "l", "ll", "j", "z", "t")
#: every conversion token bpftrace 0.17's printf accepts, with the type it wants
FORMAT_TYPES = {"s": "string", "r": "buffer", "rx": "buffer", "rh": "buffer",
                "c": "integer"}
FORMAT_TYPES.update({ln + c: "integer" for ln in _LENGTHS for c in "duoxXp"})
#: the subset debugf() (bpf_trace_printk) accepts
DEBUGF_FORMAT_TYPES = {t: FORMAT_TYPES[t] for t in
                       ("d", "u", "x", "ld", "lu", "lx", "lld", "llu", "llx", "p", "s")}
_ALTS = sorted(FORMAT_TYPES, key=lambda t: -len(t))  # rx/rh before r
#: a conversion token: ``%``, an optional ``-``, a width, an optional precision, then
#: one of :data:`FORMAT_TYPES` (longest first)
TOKEN_RE = re.compile(r"%-?[0-9]*(?:\.[0-9]+)?(?:" + "|".join(_ALTS) + ")")
