"""Reading a perf buffer: the output of ``bpf_perf_event_output`` (Linux 4.4).

A program writes to a ``BPF_MAP_TYPE_PERF_EVENT_ARRAY`` slot (usually the one of the CPU
it runs on); each slot holds a perf event of type ``PERF_COUNT_SW_BPF_OUTPUT`` with a
ring buffer that user space maps: one metadata page (``struct perf_event_mmap_page``,
whose ``data_head`` at byte 1024 the kernel advances and ``data_tail`` at byte 1032 the
reader advances) followed by 2^n data pages. Records are 8-byte aligned and start with
``struct perf_event_header`` (u32 type, u16 misc, u16 size); a ``PERF_RECORD_SAMPLE``
(type 9) with only ``PERF_SAMPLE_RAW`` carries a u32 length and the program's bytes
(padded so the record stays 8-byte aligned), a ``PERF_RECORD_LOST`` (type 2) an id and
the number of samples the kernel dropped because the buffer was full. The data area is
mapped once, so a record may wrap around its end: such records are copied together.

:class:`PerfBufReader` opens one event per online CPU, maps it, stores it in the array,
and reads every CPU's new records in a batch per wake-up, in bulk when they are
uniform. Losses are counted (:attr:`PerfBufReader.lost`, per CPU in
:attr:`PerfBufReader.lost_by_cpu`) and reported to ``lost_callback(cpu, count)``.
Records of different CPUs are not ordered with respect to each other.
"""

from __future__ import annotations

import os
import struct
from typing import Any, Callable, Dict, List, Optional, Sequence

from ..syscall.cpus import online_cpus
from ..syscall import maps as _sysmaps
from ..syscall import perf as _perf
from ..syscall.fd import FD, FdLike, fd_number
from ._mapping import PAGE_SIZE, Mapping
from .poller import EventReader
from .records import Decoder, RecordType, make_decoder, padded
from .wakeup import Wakeup, WakeupLike, WakeupPolicy, as_wakeup

__all__ = ["PerfBufReader", "online_cpus", "PERF_RECORD_SAMPLE", "PERF_RECORD_LOST",
           "DEFAULT_PAGES"]

PERF_RECORD_LOST = 2
PERF_RECORD_SAMPLE = 9
#: data pages per CPU by default (a power of two)
DEFAULT_PAGES = 64

_HEAD_Q = 1024 // 8          # data_head, in u64 units of the metadata page
_TAIL_Q = 1032 // 8          # data_tail
_OFFSET_Q = 1040 // 8        # data_offset (Linux 4.1)
_SIZE_Q = 1048 // 8          # data_size (Linux 4.1)
_HEADER = struct.Struct("=IHH")
_U32 = struct.Struct("=I")
_LOST = struct.Struct("=QQ")


class _CpuRing:
    """One CPU's event, mapping and views."""

    __slots__ = ("cpu", "fd", "mapping", "meta", "data", "qwords", "size", "mask")

    def __init__(self, cpu: int, fd: FD, mapping: Mapping, pages: int) -> None:
        self.cpu = cpu
        self.fd = fd
        self.mapping = mapping
        self.meta = mapping.view("Q")
        offset = int(self.meta[_OFFSET_Q]) or PAGE_SIZE
        size = int(self.meta[_SIZE_Q]) or pages * PAGE_SIZE
        self.size = size
        self.mask = size - 1
        self.data = mapping.view()[offset:offset + size].toreadonly()
        self.qwords = self.data.cast("Q")

    def release(self) -> None:
        for view in (self.qwords, self.data, self.meta):
            view.release()
        self.mapping.close()
        self.fd.close()


class PerfBufReader(EventReader):
    """Consume the records that programs send to a perf event array.

    ``perf_map`` is a :class:`~pybpf.maps.PerfEventArray` (or its descriptor); for each
    online CPU (or each of ``cpus``) the reader opens a ``BPF_OUTPUT`` perf event with
    ``pages`` data pages (a power of two) and stores it at the CPU's index. Records
    reach ``callback(record)`` or ``batch_callback(records)``, or :meth:`read` and
    iteration, decoded as ``record`` says (:mod:`pybpf.events.records`; always copies).
    ``lost_callback(cpu, count)`` hears of every ``PERF_RECORD_LOST``.

    ``wakeup``: ``PER_EVENT`` wakes the reader for every sample (``wakeup_events`` 1);
    ``ADAPTIVE`` (the default) only when a CPU's buffer is ``fraction`` full (a byte
    watermark) with a timed poll of :attr:`interval` seconds; ``NONE`` relies on the
    timed poll alone. :meth:`close` (or ``with``, or garbage collection) empties the
    array slots it filled and releases every event, mapping and descriptor. Linux 4.4.
    """

    def __init__(self, perf_map: FdLike, callback: Optional[Callable[[Any], Any]] = None, *,
                 batch_callback: Optional[Callable[[List[Any]], Any]] = None,
                 lost_callback: Optional[Callable[[int, int], Any]] = None,
                 record: RecordType = None, pages: int = DEFAULT_PAGES,
                 wakeup: WakeupLike = None, cpus: Optional[Sequence[int]] = None) -> None:
        if callback is not None and batch_callback is not None:
            raise TypeError("give callback= or batch_callback=, not both")
        if pages <= 0 or pages & (pages - 1):
            raise ValueError(f"pages must be a power of two, not {pages}")
        self._closed = False
        self._rings: List[_CpuRing] = []
        self._map_fd: Optional[FD] = None
        self._slots: List[int] = []
        self.pages = pages
        self.wakeup: Wakeup = as_wakeup(wakeup)
        self.interval = self.wakeup.reader_interval
        self.lost_callback = lost_callback
        self.handle(callback, batch_callback=batch_callback, record=record)
        #: total samples the kernel reported lost
        self.lost = 0
        #: lost samples by CPU
        self.lost_by_cpu: Dict[int, int] = {}
        #: records handed over so far
        self.received = 0
        self._pending: List[Any] = []
        try:
            self._map_fd = FD(os.dup(fd_number(perf_map)), "perf_event_array")
            for cpu in (online_cpus() if cpus is None else list(cpus)):
                self._open_cpu(cpu)
        except BaseException:
            self._closed = True
            self._release()
            raise

    def handle(self, callback: Optional[Callable[[Any], Any]] = None, *,
               batch_callback: Optional[Callable[[List[Any]], Any]] = None,
               record: RecordType = None) -> None:
        """Who receives the records from now on, decoded as ``record`` says (the
        constructor's arguments of the same names). A reader opened before its consumer
        is known (before the programs that send to the array are attached) keeps what
        they send in its CPU buffers meanwhile, or counts it lost when a buffer fills."""
        if callback is not None and batch_callback is not None:
            raise TypeError("give callback= or batch_callback=, not both")
        self.callback = callback
        self.batch_callback = batch_callback
        self._decoder: Decoder = make_decoder(record)
        size = self._decoder.size
        self._stride = 8 + 4 + (padded(4 + size) - 4) if size is not None else 0

    def _attr(self) -> "_perf.PerfEventAttr":
        attr = _perf.bpf_output_attr()
        data_bytes = self.pages * PAGE_SIZE
        policy = self.wakeup.policy
        if policy is WakeupPolicy.PER_EVENT:
            attr.wakeup_events = 1
        else:
            fraction = self.wakeup.fraction if policy is WakeupPolicy.ADAPTIVE else 1.0
            attr.watermark = 1
            attr.wakeup_watermark = max(1, min(data_bytes - PAGE_SIZE // 2,
                                               int(data_bytes * fraction)))
        return attr

    def _open_cpu(self, cpu: int) -> None:
        fd = _perf.perf_event_open(self._attr(), -1, cpu, -1, _perf.PERF_FLAG_FD_CLOEXEC)
        try:
            mapping = Mapping(fd, (1 + self.pages) * PAGE_SIZE, 0, writable=True)
        except BaseException:
            fd.close()
            raise
        ring = _CpuRing(cpu, fd, mapping, self.pages)
        self._rings.append(ring)
        assert self._map_fd is not None
        _sysmaps.map_update_elem(self._map_fd, cpu.to_bytes(4, "little"),
                                 fd.fileno().to_bytes(4, "little"))
        self._slots.append(cpu)

    # -- EventReader ------------------------------------------------------------------
    def _wait_fds(self) -> List[int]:
        return [ring.fd.fileno() for ring in self._rings]

    @property
    def cpus(self) -> List[int]:
        """The CPUs this reader has an event on."""
        return [ring.cpu for ring in self._rings]

    def _release(self) -> None:
        if self._map_fd is not None:
            for cpu in self._slots:
                try:
                    _sysmaps.map_delete_elem(self._map_fd, cpu.to_bytes(4, "little"))
                except OSError:
                    pass
            self._slots = []
            self._map_fd.close()
            self._map_fd = None
        rings, self._rings = self._rings, []
        for ring in rings:
            ring.release()

    def _close(self) -> None:
        self._pending = []
        self._release()

    # -- the hot path -------------------------------------------------------------------
    def _consume(self, sink: Optional[List[Any]]) -> int:
        total = 0
        if self._pending:
            pending, self._pending = self._pending, []
            total += self._deliver(pending, sink)
        for ring in self._rings:
            meta = ring.meta
            tail = meta[_TAIL_Q]
            head = meta[_HEAD_Q]
            if tail < head:              # one snapshot per CPU and call (see ringbuf)
                out: List[Any] = []
                pos = self._collect(ring, tail, head, out)
                meta[_TAIL_Q] = pos      # records are copies: give the space back now
                total += self._deliver(out, sink)
        return total

    def _collect(self, ring: _CpuRing, tail: int, head: int, out: List[Any]) -> int:
        stride = self._stride
        size = ring.size
        data = ring.data
        while tail < head:
            off = tail & ring.mask
            if stride:
                count = min(head - tail, size - off) // stride
                if count > 1:
                    step = stride >> 3
                    first = off >> 3
                    heads = ring.qwords[first:first + count * step:step].tolist()
                    h0 = heads[0]
                    if (heads.count(h0) == count and h0 & 0xFFFFFFFF == PERF_RECORD_SAMPLE
                            and h0 >> 48 == stride):
                        recs = self._decoder.bulk(data[off:off + count * stride], stride,
                                                  12, stride - 12)
                        if recs is not None:
                            out.extend(recs)
                            tail += count * stride
                            continue
            tail = self._one(ring, tail, head, out)
            if stride:
                # not uniform here: finish this batch record by record
                while tail < head:
                    tail = self._one(ring, tail, head, out)
        return tail

    def _one(self, ring: _CpuRing, tail: int, head: int, out: List[Any]) -> int:
        data = ring.data
        off = tail & ring.mask
        rtype, _misc, rsize = _HEADER.unpack_from(data, off)
        if rsize < 8:                        # corrupt: drop what is there
            return head
        end = off + rsize
        if end <= ring.size:
            buf: Any = data
            base = off
        else:                                 # wraps around: put the pieces together
            buf = memoryview(data[off:].tobytes() + data[:end - ring.size].tobytes())
            base = 0
        if rtype == PERF_RECORD_SAMPLE:
            (raw,) = _U32.unpack_from(buf, base + 8)
            out.append(self._decoder.one(buf, base + 12, raw))
        elif rtype == PERF_RECORD_LOST:
            _id, count = _LOST.unpack_from(buf, base + 8)
            self.lost += count
            self.lost_by_cpu[ring.cpu] = self.lost_by_cpu.get(ring.cpu, 0) + count
            if self.lost_callback is not None:
                self.lost_callback(ring.cpu, count)
        return tail + rsize

    def _deliver(self, records: List[Any], sink: Optional[List[Any]]) -> int:
        return self._hand_over(records, sink, keep_rest=True)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"cpus={self.cpus} pages={self.pages}"
        return f"<PerfBufReader {state} {self.wakeup.policy.value}>"
