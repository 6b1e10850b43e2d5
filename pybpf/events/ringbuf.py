"""Reading a BPF ring buffer (``BPF_MAP_TYPE_RINGBUF``, Linux 5.8) from Python.

The kernel lets user space map a ring buffer map's descriptor as follows:

* offset 0, one page, read-write: the *consumer page*, whose first 8 bytes are the
  consumer position (how far the reader has read);
* offset one page, read-only: the *producer page*, whose first 8 bytes are the producer
  position, followed by the data area mapped twice in a row, so that a record that
  wraps past the end of the ring is still contiguous in memory.

Positions only grow; ``pos & (size - 1)`` is the offset in the data area. Each record
starts with an 8-byte header: a 32-bit length whose top bit says *busy* (reserved, not
yet committed) and next bit *discard* (given back; skip it), then 32 bits the kernel
uses to find its page. The record's payload follows and the next record starts at the
next 8-byte boundary.

:class:`RingBufReader` reads a batch at a time: it takes the producer position once,
walks the records from its memoryview of the data area (stopping at the first busy
one, skipping discarded ones), hands them over, and then stores the consumer position
once. When records all have the record type's size, a batch is checked and decoded at
C speed: one strided slice of the headers and one ``struct.iter_unpack`` over the span.
Raw ``bytes`` records of any sizes are sliced from one copy of the span, taken after
the walk over the headers.
"""

from __future__ import annotations

import os
from typing import Any, Callable, List, Optional, Tuple

from ..syscall.maps import map_lookup_elem as map_lookup
from ..syscall.fd import FD, FdLike, fd_number
from ._mapping import PAGE_SIZE, Mapping
from .poller import EventReader
from .records import Decoder, RecordType, make_decoder, padded
from .wakeup import Wakeup, WakeupLike, as_wakeup

__all__ = ["RingBufReader", "BUSY_BIT", "DISCARD_BIT", "HEADER_SIZE"]

#: record header bit: reserved but not committed yet
BUSY_BIT = 1 << 31
#: record header bit: discarded by the producer, to be skipped
DISCARD_BIT = 1 << 30
#: bytes of the record header
HEADER_SIZE = 8
_LEN_MASK = ~(BUSY_BIT | DISCARD_BIT) & 0xFFFFFFFF


def _ring_size_of(ringbuf: Any, fd: int) -> int:
    size = getattr(ringbuf, "max_entries", None)
    if isinstance(size, int) and size > 0:
        return size
    from ..syscall.objects import map_info
    return int(map_info(fd).max_entries)


class RingBufReader(EventReader):
    """Consume the records of a ring buffer map.

    ``ringbuf`` is a :class:`~pybpf.maps.RingBuf`, another object with ``fileno()``, or
    a descriptor number; the reader keeps its own duplicate of the descriptor, so the
    map object may be closed first. Records reach:

    * ``callback(record)``: one call per record, or
    * ``batch_callback(records)``: one call per batch with a list (fastest), or
    * the return value of :meth:`read`, or iteration (``for record in reader``).

    ``record`` says how records are decoded (see :mod:`pybpf.events.records`): None for
    ``bytes``, a ``struct`` format for tuples, a ctypes structure, or a callable.
    ``zero_copy=True`` hands out memoryviews / ctypes structures over the ring's memory
    instead of copies: they are valid only until the callback returns (the space is
    given back to producers right after) and must not be written to.

    ``wakeup`` is the producers' wake-up policy (:mod:`pybpf.events.wakeup`), which sets
    the reader's timed poll (:attr:`interval`); the default, adaptive, polls every
    :data:`~pybpf.events.wakeup.DEFAULT_INTERVAL` seconds. ``drops`` = ``(array_map,
    index)`` names the drop counter the program bumps when the ring is full (see
    :func:`~pybpf.events.wakeup.ringbuf_output`); :attr:`lost` reads it.

    If a callback raises, the records after the failing one are kept and handed over
    first by the next call (not for ``zero_copy``, whose views would be stale: they are
    dropped). Linux 5.8.
    """

    def __init__(self, ringbuf: FdLike, callback: Optional[Callable[[Any], Any]] = None, *,
                 batch_callback: Optional[Callable[[List[Any]], Any]] = None,
                 record: RecordType = None, zero_copy: bool = False,
                 wakeup: WakeupLike = None, drops: Optional[Tuple[Any, int]] = None) -> None:
        if callback is not None and batch_callback is not None:
            raise TypeError("give callback= or batch_callback=, not both")
        self._fd: Optional[FD] = None
        self._maps: List[Mapping] = []
        self._closed = False
        try:
            self._fd = FD(os.dup(fd_number(ringbuf)), "ringbuf")
            fd = self._fd.fileno()
            self.size = _ring_size_of(ringbuf, fd)
            if self.size <= 0 or self.size & (self.size - 1):
                raise ValueError(f"not a ring buffer: size {self.size} is not a power of 2")
            self._mask = self.size - 1
            cons = Mapping(fd, PAGE_SIZE, 0, writable=True)
            self._maps.append(cons)
            prod = Mapping(fd, PAGE_SIZE + 2 * self.size, PAGE_SIZE)
            self._maps.append(prod)
        except BaseException:
            self._closed = True
            self._release()
            raise
        self._cons_v = cons.view("Q")
        self._prod_v = prod.view("Q")
        self._data = prod.view()[PAGE_SIZE:]
        self._words = self._data.cast("I")
        self._decoder: Decoder = make_decoder(record, zero_copy=zero_copy)
        if zero_copy and hasattr(self._decoder, "backing"):
            self._decoder.backing = (prod.array, PAGE_SIZE)
        self.zero_copy = zero_copy
        self.callback = callback
        self.batch_callback = batch_callback
        self.wakeup: Wakeup = as_wakeup(wakeup)
        self.interval = self.wakeup.reader_interval
        self.drops = drops
        self._pending: List[Any] = []
        self._fixed = self._decoder.size is not None
        if self._fixed:
            size = self._decoder.size or 0
            self._stride = padded(HEADER_SIZE + size)
            self._exp = size
        #: records handed over so far
        self.received = 0
        #: batches handed over so far
        self.batches = 0

    # -- EventReader ------------------------------------------------------------------
    @property
    def edge_triggered(self) -> bool:
        """True for the policies with a timed poll (adaptive, none): the poller waits
        for forced wake-ups or the interval, never for "the ring is not empty", which
        under a storm would hand over batches of a few records in a busy loop."""
        return self.interval is not None

    def _wait_fds(self) -> List[int]:
        return [self._fd.fileno()] if self._fd is not None else []

    def _release(self) -> None:
        for name in ("_cons_v", "_prod_v", "_data", "_words"):
            view = self.__dict__.pop(name, None)
            if view is not None:
                view.release()
        dec = getattr(self, "_decoder", None)
        if dec is not None and hasattr(dec, "backing"):
            dec.backing = None
        for m in self._maps:
            m.close()
        self._maps = []
        fd, self._fd = self._fd, None
        if fd is not None:
            fd.close()

    def _close(self) -> None:
        self._pending = []
        self._release()

    @property
    def mappings(self) -> List[Mapping]:
        """The consumer and producer mappings (for inspection and tests)."""
        return list(self._maps)

    @property
    def consumer_pos(self) -> int:
        """The consumer position (bytes consumed since the ring was created)."""
        self._check_open()
        return int(self._cons_v[0])

    @property
    def producer_pos(self) -> int:
        """The producer position (bytes reserved since the ring was created)."""
        self._check_open()
        return int(self._prod_v[0])

    @property
    def available(self) -> int:
        """Bytes between the consumer and producer positions (headers included)."""
        return self.producer_pos - self.consumer_pos

    @property
    def lost(self) -> Optional[int]:
        """The program's drop counter (``drops=``), or None when there is none."""
        if self.drops is None:
            return None
        dmap, index = self.drops
        raw = map_lookup(dmap, (0).to_bytes(4, "little"), 8 * (index + 1))
        return int.from_bytes(raw[8 * index:8 * index + 8], "little") if raw else 0

    # -- the hot path -------------------------------------------------------------------
    def _collect(self, cons: int, prod: int, out: List[Any]) -> int:
        """Decode the committed records in [cons, prod) into ``out``; return the position
        after the last one taken (a busy record stops the walk)."""
        if self._fixed:
            nbytes = prod - cons
            stride = self._stride
            if nbytes % stride == 0:
                pos = self._collect_fixed(cons, nbytes // stride, out)
                if pos == prod:
                    return pos
                cons = pos
        if type(self._decoder) is Decoder:     # plain copies: one copy of the span
            return self._collect_bytes(cons, prod, out)
        return self._collect_any(cons, prod, out)

    def _collect_fixed(self, cons: int, count: int, out: List[Any]) -> int:
        stride = self._stride
        exp = self._exp
        start = cons & self._mask
        step = stride >> 2
        first = start >> 2
        lens = self._words[first:first + count * step:step].tolist()
        good = lens.count(exp)
        if good == count:
            taken = count
            discards = 0
        else:
            busy = exp | BUSY_BIT
            taken = lens.index(busy) if busy in lens else count
            if taken < count:
                lens = lens[:taken]
                good = lens.count(exp)
            discards = lens.count(exp | DISCARD_BIT)
            if good + discards != taken:
                return cons             # other sizes: the general walk decides
        if taken == 0:
            return cons
        span = self._data[start:start + taken * stride]
        recs = self._decoder.bulk(span, stride, HEADER_SIZE, exp)
        if recs is None:
            return cons
        if discards:
            recs = [r for r, n in zip(recs, lens) if n == exp]
        out.extend(recs)
        return cons + taken * stride

    def _collect_bytes(self, pos: int, prod: int, out: List[Any]) -> int:
        """:meth:`_collect_any` for raw ``bytes`` records: the headers are walked first
        (up to the first busy record), then the committed span is copied once (the data
        area is mapped twice in a row, so it is contiguous even when it wraps) and each
        record is a slice of that copy, rather than a view made and copied per record."""
        words = self._words
        start = pos & self._mask
        off = start
        end = start + (prod - pos)
        spans: List[int] = []
        add = spans.append
        while off < end:
            head = words[off >> 2]
            if head & BUSY_BIT:
                break
            length = head & _LEN_MASK
            if not head & DISCARD_BIT:
                add(off + HEADER_SIZE - start)
                add(length)
            off += (length + HEADER_SIZE + 7) & ~7
        if off == start:
            return pos
        raw = self._data[start:off].tobytes()
        it = iter(spans)
        out.extend([raw[at:at + n] for at, n in zip(it, it)])
        return pos + (off - start)

    def _collect_any(self, pos: int, prod: int, out: List[Any]) -> int:
        words = self._words
        data = self._data
        mask = self._mask
        one = self._decoder.one
        append = out.append
        while pos < prod:
            off = pos & mask
            head = words[off >> 2]
            if head & BUSY_BIT:
                break
            length = head & _LEN_MASK
            pos += (length + HEADER_SIZE + 7) & ~7
            if not head & DISCARD_BIT:
                append(one(data, off + HEADER_SIZE, length))
        return pos

    def _consume(self, sink: Optional[List[Any]]) -> int:
        total = 0
        if self._pending:
            pending, self._pending = self._pending, []
            total += self._deliver(pending, sink)
        # one snapshot of the producer position per call: chasing a busy producer
        # record by record would turn big batches into many tiny ones
        cons_v = self._cons_v
        cons = cons_v[0]
        prod = self._prod_v[0]
        if cons >= prod:
            return total
        batch: List[Any] = []
        pos = self._collect(cons, prod, batch)
        if pos == cons:
            return total               # a busy record at the head: its producer is writing
        try:
            if self.zero_copy or sink is not None:
                total += self._deliver(batch, sink)
                cons_v[0] = pos
            else:
                cons_v[0] = pos         # copies: the space can go back at once
                total += self._deliver(batch, sink)
        except BaseException:
            cons_v[0] = pos
            raise
        return total

    def _deliver(self, records: List[Any], sink: Optional[List[Any]]) -> int:
        if records:
            self.batches += 1
        # zero-copy records left over after a callback error would be stale views
        return self._hand_over(records, sink, keep_rest=not self.zero_copy)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"size={self.size}"
        return f"<RingBufReader {state} {self.wakeup.policy.value}>"
