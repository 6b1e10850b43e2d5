"""pybpf.events: moving events from BPF programs to Python.

* :class:`RingBufReader` (:mod:`~pybpf.events.ringbuf`): BPF ring buffers (Linux 5.8);
* :class:`PerfBufReader` (:mod:`~pybpf.events.perfbuf`): perf event arrays, one
  ``BPF_OUTPUT`` event per CPU (Linux 4.4);
* :class:`Poller` (:mod:`~pybpf.events.poller`): one epoll over several readers;
* :mod:`~pybpf.events.records`: records as bytes, tuples (in bulk) or ctypes structures;
* :mod:`~pybpf.events.wakeup`: the wake-up policy and its program-side building blocks;
* :mod:`~pybpf.events.trace_pipe`: ``bpf_trace_printk`` output, raw or parsed;
* :mod:`~pybpf.events.histogram`: log2 and linear histograms in BCC's and bpftrace's
  layouts and as JSON, with the kernel-side bucket building blocks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:                  # pragma: no cover - for type checkers only
    from .perfbuf import PerfBufReader
    from .poller import EventReader, Poller
    from .records import make_decoder, struct_format_of, unpack_records
    from .ringbuf import RingBufReader
    from .wakeup import Wakeup, WakeupPolicy

__all__ = ["EventReader", "Poller", "RingBufReader", "PerfBufReader", "Wakeup",
           "WakeupPolicy", "make_decoder", "struct_format_of", "unpack_records"]

#: each public name's module, imported when the name is first used (a compiler that
#: only needs the wake-up rule imports no reader)
_HOMES = {"PerfBufReader": "perfbuf", "EventReader": "poller", "Poller": "poller",
          "make_decoder": "records", "struct_format_of": "records",
          "unpack_records": "records", "RingBufReader": "ringbuf", "Wakeup": "wakeup",
          "WakeupPolicy": "wakeup"}

__getattr__ = lazy_exports(__name__, _HOMES, globals())
