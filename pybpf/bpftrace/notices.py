"""The run's notices, in bpftrace 0.17's text and ``-f json`` forms: the line that
starts a run (``Attaching N probes...``) and the report of dropped events. Apart from
:mod:`.output` and :mod:`.json_output` (which re-export them) so that a run's start
prints its first line without importing the value and map printers."""

from __future__ import annotations

__all__ = ["attached_probes_text", "lost_events_text", "attached_probes_json",
           "lost_events_json"]

_M64 = (1 << 64) - 1


def attached_probes_text(n: int) -> str:
    """``Attaching N probes...`` (``probe`` for one)."""
    return f"Attaching {n} probe...\n" if n == 1 else f"Attaching {n} probes...\n"


def lost_events_text(n: int) -> str:
    """The notice for events the perf/ring buffer dropped."""
    return f"Lost {n} events\n"


def _count_message(kind: str, field: str, n: int) -> str:
    return f'{{"type": "{kind}", "data": {{"{field}": {n & _M64}}}}}\n'


def attached_probes_json(n: int) -> str:
    """``{"type": "attached_probes", "data": {"probes": N}}``."""
    return _count_message("attached_probes", "probes", n)


def lost_events_json(n: int) -> str:
    """``{"type": "lost_events", "data": {"events": N}}``."""
    return _count_message("lost_events", "events", n)
