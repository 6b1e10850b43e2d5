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

from .perfbuf import PerfBufReader
from .poller import EventReader, Poller
from .records import make_decoder, struct_format_of, unpack_records
from .ringbuf import RingBufReader
from .wakeup import Wakeup, WakeupPolicy

__all__ = ["EventReader", "Poller", "RingBufReader", "PerfBufReader", "Wakeup",
           "WakeupPolicy", "make_decoder", "struct_format_of", "unpack_records"]
