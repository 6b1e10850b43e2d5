"""``bpf_trace_printk`` output: the kernel's trace pipe, as lines or parsed fields.

``bpf_trace_printk`` writes into the tracing ring buffer, which user space reads from
``trace_pipe`` in tracefs (``/sys/kernel/tracing``, or ``/sys/kernel/debug/tracing``
on older systems). Reading consumes: every reader of the machine shares one pipe. A line
looks like::

    python3-4242    [001] d..31  5309.815233: bpf_trace_printk: hello 7

task name (which may contain spaces and dashes), pid (``<...>`` when the name is not
known), an optional ``(tgid)``, the CPU in brackets, the flags (irqs off, need-resched,
hard/soft irq, preempt depth, and since Linux 5.15 migrate-disable), the timestamp in
seconds, the event name and the message.

:class:`TracePipe` reads with a timeout; :meth:`TracePipe.lines` gives raw lines,
:meth:`TracePipe.fields` :class:`TraceFields` (task, pid, cpu, flags, timestamp,
message, like BCC's ``trace_fields``); :func:`parse_line` parses one line.
"""

from __future__ import annotations

import os
import re
import select
import time
from typing import Any, Iterator, List, NamedTuple, Optional

from .. import tracefs as _tracefs

__all__ = ["trace_pipe_path", "TraceFields", "parse_line", "TracePipe", "trace_print"]

_LINE = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+"
    r"(?:\(\s*(?P<tgid>[\d-]+)\)\s+)?"
    r"\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\[\]]{4,6})\s+)?"
    r"(?P<ts>\d+\.\d+):\s+"
    r"(?P<event>[^:\s]+):\s?(?P<msg>.*)$")


def trace_pipe_path() -> str:
    """The ``trace_pipe`` of the mounted tracefs (found, or mounted when this process
    may, by :func:`pybpf.tracefs.tracefs_root`; raises
    :class:`~pybpf.syscall.errors.NotSupportedError`, an ``OSError``, without one).
    tracefs is Linux 4.1, ``bpf_trace_printk`` Linux 4.1."""
    return os.path.join(_tracefs.tracefs_root(), "trace_pipe")


class TraceFields(NamedTuple):
    """One parsed trace line: ``task`` (comm, or ``<...>``), ``pid``, ``cpu``,
    ``flags`` (text, may be empty), ``timestamp`` (seconds, float), ``message`` (after
    the event name), plus ``event`` (``"bpf_trace_printk"``) and ``tgid`` (None unless
    the ``record-tgid`` option is on)."""

    task: str
    pid: int
    cpu: int
    flags: str
    timestamp: float
    message: str
    event: str = ""
    tgid: Optional[int] = None


def parse_line(line: str) -> Optional[TraceFields]:
    """The fields of one ``trace_pipe`` line, or None if it is not in the usual
    layout (a ``CPU:N [LOST M EVENTS]`` notice, for example)."""
    found = _LINE.match(line.rstrip("\n"))
    if not found:
        return None
    tgid = found.group("tgid")
    return TraceFields(
        task=found.group("task").strip(), pid=int(found.group("pid")),
        cpu=int(found.group("cpu")), flags=found.group("flags") or "",
        timestamp=float(found.group("ts")), message=found.group("msg"),
        event=found.group("event"),
        tgid=int(tgid) if tgid and tgid.strip("-") else None)


class TracePipe:
    """An open ``trace_pipe``: read lines with a timeout.

    ``path`` defaults to :func:`trace_pipe_path`. The descriptor is
    non-blocking and released by :meth:`close`, ``with`` or garbage collection.
    :meth:`fileno` suits ``selectors`` and ``asyncio``.
    """

    def __init__(self, path: Optional[str] = None) -> None:
        self.path = path or trace_pipe_path()
        self._fd: Optional[int] = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK |
                                          os.O_CLOEXEC)
        self._buf = b""
        self._lines: List[str] = []

    def fileno(self) -> int:
        """The pipe's descriptor."""
        if self._fd is None:
            raise ValueError("operation on a closed TracePipe")
        return self._fd

    def _fill(self, timeout: Optional[float]) -> bool:
        fd = self.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        ms = -1 if timeout is None else max(0, int(timeout * 1000))
        if not poller.poll(ms):
            return False
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return False
        if not chunk:
            return False
        data = self._buf + chunk
        *complete, self._buf = data.split(b"\n")
        self._lines.extend(c.decode("utf-8", "replace") for c in complete)
        return True

    def readline(self, timeout: Optional[float] = None) -> Optional[str]:
        """The next line (without its newline), waiting up to ``timeout`` seconds (None:
        without limit); None on timeout."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._lines:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._fill(left) and left is not None and \
                    time.monotonic() >= deadline:    # type: ignore[operator]
                return None
        return self._lines.pop(0)

    def lines(self, timeout: Optional[float] = None) -> Iterator[str]:
        """Raw lines until none arrives for ``timeout`` seconds (None: forever)."""
        while True:
            line = self.readline(timeout)
            if line is None:
                return
            yield line

    def fields(self, timeout: Optional[float] = None) -> Iterator[TraceFields]:
        """Parsed lines (:class:`TraceFields`; lines that do not parse are skipped)
        until none arrives for ``timeout`` seconds."""
        for line in self.lines(timeout):
            parsed = parse_line(line)
            if parsed is not None:
                yield parsed

    def trace_fields(self, timeout: Optional[float] = None) -> Optional[TraceFields]:
        """The next parsed line (BCC's ``trace_fields``), or None on timeout."""
        return next(self.fields(timeout), None)

    def close(self) -> None:
        """Close the pipe (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def __enter__(self) -> "TracePipe":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            self.close()


def trace_print(fmt: Optional[str] = None, *, timeout: Optional[float] = None,
                file: Any = None) -> None:
    """Print trace lines until none arrives for ``timeout`` seconds (None: until
    interrupted), like BCC's ``trace_print``: raw lines, or ``fmt.format(**fields)``
    with the fields of :class:`TraceFields` (``"{pid} {message}"``)."""
    with TracePipe() as pipe:
        for line in pipe.lines(timeout):
            if fmt is None:
                print(line, file=file, flush=True)
                continue
            parsed = parse_line(line)
            if parsed is not None:
                print(fmt.format(**parsed._asdict()), file=file, flush=True)
