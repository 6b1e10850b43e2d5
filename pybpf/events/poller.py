"""Waiting for events: one epoll over any number of readers.

Every reader (:class:`~pybpf.events.ringbuf.RingBufReader`,
:class:`~pybpf.events.perfbuf.PerfBufReader`) is an :class:`EventReader`: it has
:meth:`~EventReader.consume` (take whatever is there, without waiting),
:meth:`~EventReader.poll` (wait, then consume), :meth:`~EventReader.read` (wait, then
return the records), iteration, and :meth:`~EventReader.fileno` for ``selectors`` and
``asyncio``. A :class:`Poller` waits on several readers at once::

    with Poller([ring_a, ring_b, perf]) as poller:
        while running:
            poller.poll(0.1)

**Timed polls.** A reader whose producers skip wake-ups (the adaptive and "none" wake-up
policies, see :mod:`pybpf.events.wakeup`) has an :attr:`~EventReader.interval`: waiting
never lasts longer than that before the reader looks at its buffer, which bounds the
latency of a quietly posted record. After every wake-up or interval the poller consumes
every reader, since a reader whose records arrived without a wake-up is not reported
ready by the kernel; an empty buffer costs two memory reads.
"""

from __future__ import annotations

import select
import time
import warnings
from typing import Any, Callable, Iterable, Iterator, List, Optional

__all__ = ["EventReader", "Poller"]


class EventReader:
    """What every event reader offers; subclasses provide :meth:`_wait_fds`,
    :meth:`_consume` and :meth:`_close`.

    ``interval`` (seconds or None) is the longest a wait may last before the buffer is
    looked at again (None: only wake-ups count). A reader is a context manager and
    releases everything it holds (descriptors, mappings, perf events) on
    :meth:`close`, at the end of a ``with`` block, or when garbage collected (with a
    :class:`ResourceWarning`).
    """

    interval: Optional[float] = None
    _closed = True
    _poller: Optional["Poller"] = None
    # set by each reader's constructor
    callback: Optional[Any] = None
    batch_callback: Optional[Any] = None
    received: int = 0
    _pending: List[Any] = []

    # -- to be provided ---------------------------------------------------------------
    def _wait_fds(self) -> List[int]:
        raise NotImplementedError

    def _consume(self, sink: Optional[List[Any]]) -> int:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    @property
    def edge_triggered(self) -> bool:
        """True when a :class:`Poller` should wait for this reader's wake-ups only
        (``EPOLLET``), not for its buffer being non-empty. A ring buffer's descriptor is
        readable whenever it holds data, so under a steady stream a level-triggered wait
        would return at once, every time, and the reader would spin over batches of a
        few records; a reader with a timed poll (:attr:`interval`) needs no readiness
        beyond the producers' forced wake-ups, and sleeps until one comes or the interval
        ends, which lets records gather into large batches."""
        return False

    # -- shared by the readers -----------------------------------------------------------
    def _hand_over(self, records: List[Any], sink: Optional[List[Any]], *,
                   keep_rest: bool) -> int:
        """Give a decoded batch to ``sink``, the batch callback or the per-record
        callback, counting ``received``. If a per-record callback raises, the records
        after the failing one are kept for the next call when ``keep_rest``."""
        if not records:
            return 0
        if sink is not None:
            sink.extend(records)
        elif self.batch_callback is not None:
            self.batch_callback(records)
        elif self.callback is not None:
            cb = self.callback
            i = 0
            try:
                for i, rec in enumerate(records):    # noqa: B007
                    cb(rec)
            except BaseException:
                if keep_rest:
                    self._pending = records[i + 1:]
                self.received += i + 1
                raise
        self.received += len(records)
        return len(records)

    # -- common API ---------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"operation on a closed {type(self).__name__}")

    def consume(self) -> int:
        """Handle the records available now (up to the producer position read at the
        start of the call), without waiting; returns how many were handed over
        (discarded records do not count)."""
        self._check_open()
        return self._consume(None)

    def poll(self, timeout: Optional[float] = None) -> int:
        """Wait up to ``timeout`` seconds (None: without limit, 0: not at all) until
        records are there, handle them, and return how many were handled (0 on
        timeout). See :meth:`Poller.poll` for how the wait and the timed poll work."""
        self._check_open()
        return self._own_poller().poll(timeout)

    def read(self, timeout: Optional[float] = None) -> List[Any]:
        """Like :meth:`poll`, but return the decoded records (copies, valid after the
        call) instead of calling the callback."""
        self._check_open()
        out: List[Any] = []
        if timeout == 0:
            self._consume(out)
            return out
        deadline = None if timeout is None else time.monotonic() + timeout
        poller = self._own_poller()
        while True:
            wait = _remaining(deadline)
            poller._wait(wait, [self])
            if self._consume(out) or (wait is not None and _remaining(deadline) == 0):
                return out

    def __iter__(self) -> Iterator[Any]:
        """Yield records forever (waiting as needed); stop with ``break``."""
        while True:
            yield from self.read(None)

    def fileno(self) -> int:
        """A descriptor that becomes readable when the kernel signals new records: for
        ``selectors``, ``select``, or ``asyncio``'s ``loop.add_reader(reader.fileno(),
        reader.consume)``. Records posted without a wake-up do not make it readable: pair
        it with a timer of :attr:`interval` seconds for such producers."""
        self._check_open()
        fds = self._wait_fds()
        if len(fds) == 1:
            return fds[0]
        return self._own_poller().fileno()

    def _own_poller(self) -> "Poller":
        if self._poller is None:
            self._poller = Poller([self])
        return self._poller

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Release the reader's descriptors, mappings and events (idempotent)."""
        if self._closed:
            return
        self._closed = True
        poller, self._poller = self._poller, None
        try:
            if poller is not None:
                poller.close()
        finally:
            self._close()

    def __enter__(self) -> Any:
        self._check_open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            warnings.warn(f"unclosed {type(self).__name__}", ResourceWarning, stacklevel=2)
            try:
                self.close()
            except Exception:       # noqa: BLE001 - never raise from a finalizer
                pass


def _remaining(deadline: Optional[float]) -> Optional[float]:
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


class Poller:
    """One epoll instance over the wake-up descriptors of several readers.

    :meth:`poll` waits (bounded by the shortest :attr:`EventReader.interval`) and then
    consumes every reader; :meth:`fileno` is the epoll descriptor itself, readable when
    any reader is, so a poller nests in ``selectors`` and ``asyncio`` too. The epoll
    descriptor is released by :meth:`close`, ``with`` or garbage collection; the readers
    are not closed by it (use :meth:`close_all` for that).
    """

    def __init__(self, readers: Iterable[EventReader] = ()) -> None:
        self._epoll: Optional[select.epoll] = select.epoll()
        self.readers: List[EventReader] = []
        for reader in readers:
            self.add(reader)

    def add(self, reader: EventReader) -> None:
        """Watch ``reader`` too."""
        ep = self._open()
        reader._check_open()
        events = select.EPOLLIN | (select.EPOLLET if reader.edge_triggered else 0)
        for fd in reader._wait_fds():
            ep.register(fd, events)
        self.readers.append(reader)

    def remove(self, reader: EventReader) -> None:
        """Stop watching ``reader`` (which stays open)."""
        ep = self._open()
        self.readers.remove(reader)
        if not reader.closed:
            for fd in reader._wait_fds():
                try:
                    ep.unregister(fd)
                except (OSError, ValueError):
                    pass

    def _open(self) -> select.epoll:
        if self._epoll is None:
            raise ValueError("operation on a closed Poller")
        return self._epoll

    def fileno(self) -> int:
        """The epoll descriptor: readable when a watched reader has been woken."""
        return self._open().fileno()

    def _interval(self, readers: List[EventReader]) -> Optional[float]:
        intervals = [r.interval for r in readers if r.interval is not None]
        return min(intervals) if intervals else None

    def _wait(self, timeout: Optional[float], readers: List[EventReader]) -> None:
        ep = self._open()
        bound = self._interval(readers)
        if timeout is None:
            wait = bound if bound is not None else -1
        else:
            wait = timeout if bound is None else min(timeout, bound)
        ep.poll(wait)

    def consume(self) -> int:
        """Consume every reader without waiting; the number of records handled."""
        self._open()
        return sum(reader.consume() for reader in self.readers)

    def poll(self, timeout: Optional[float] = None) -> int:
        """Wait up to ``timeout`` seconds (None: no limit) until some reader has
        records, handle every reader's records, and return how many were handled.

        The wait comes first: a reader that was woken (or, for a reader without a
        timed poll, whose buffer is non-empty) returns at once; otherwise the wait lasts
        until a wake-up or the shortest :attr:`EventReader.interval`, which lets quietly
        posted records pile up into one batch (see :attr:`EventReader.edge_triggered`).
        ``timeout=0`` only consumes."""
        if timeout == 0:
            return self.consume()
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _remaining(deadline)
            self._wait(wait, self.readers)
            handled = self.consume()
            if handled or (wait is not None and _remaining(deadline) == 0):
                return handled

    def run(self, until: Optional[Callable[[], bool]] = None,
            duration: Optional[float] = None) -> int:
        """Poll until ``until()`` is true or ``duration`` seconds have passed (or
        forever); returns the number of records handled."""
        total = 0
        deadline = None if duration is None else time.monotonic() + duration
        while not (until is not None and until()):
            left = _remaining(deadline)
            if left == 0:
                break
            total += self.poll(left if left is not None else 0.1)
        return total

    def close(self) -> None:
        """Release the epoll descriptor (the readers stay open)."""
        ep, self._epoll = self._epoll, None
        if ep is not None:
            ep.close()

    def close_all(self) -> None:
        """Close every reader, then the poller."""
        try:
            for reader in self.readers:
                reader.close()
        finally:
            self.close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._epoll is None

    def __enter__(self) -> "Poller":
        self._open()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        ep = getattr(self, "_epoll", None)
        if ep is not None:
            ep.close()
