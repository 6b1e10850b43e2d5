"""pybpf.link: attaching loaded programs. Every attach returns a
:class:`~pybpf.link.base.Link` (``close()``, ``detach()``, ``with``; closed at exit and
on SIGINT/SIGTERM).

=======================  ==========================================================
module                   attaches
=======================  ==========================================================
``tracepoint``           :func:`attach_tracepoint` (perf event, ``group:name``)
``raw_tracepoint``       :func:`attach_raw_tracepoint`
``kprobe``               :func:`attach_kprobe`, :func:`attach_kretprobe`,
                         :func:`attach_kprobe_multi`, :func:`syscall_function`
``uprobe``               :func:`attach_uprobe`, :func:`attach_uretprobe`,
                         :func:`attach_usdt`
``tracing``              :func:`load_tracing`, :func:`attach_tracing` (fentry, fexit,
                         fmod_ret, tp_btf, LSM)
``iter``                 :func:`attach_iter` (iterators, read with ``link.read()``)
``perf_event``           :func:`attach_perf_event` (sampling), :class:`CounterArray`
``socket``               :func:`attach_socket_filter`
``xdp``                  :func:`attach_xdp`
``tc``                   :func:`attach_tc` (TCX, netlink clsact fallback)
=======================  ==========================================================

The shared pieces are ``base`` (:class:`Link`, the exit/signal registry),
``perf_link`` (programs on perf events) and ``netlink`` (a small rtnetlink client).
Names are imported lazily: ``import pybpf.link`` loads only this file.
"""

from __future__ import annotations

from .._lazy import lazy_exports

__all__ = [
    "Link", "MultiLink", "close_all", "open_links", "set_signal_cleanup",
    "attach_tracepoint", "attach_raw_tracepoint", "attach_kprobe", "attach_kretprobe",
    "attach_kprobe_multi", "syscall_function", "attach_uprobe", "attach_uretprobe",
    "attach_usdt", "load_tracing", "attach_tracing", "attach_iter", "attach_perf_event",
    "CounterArray", "attach_socket_filter", "attach_xdp", "attach_tc",
]

_LAZY = {
    "Link": "base", "MultiLink": "base", "close_all": "base", "open_links": "base",
    "set_signal_cleanup": "base",
    "attach_tracepoint": "tracepoint", "attach_raw_tracepoint": "raw_tracepoint",
    "attach_kprobe": "kprobe", "attach_kretprobe": "kprobe",
    "attach_kprobe_multi": "kprobe", "syscall_function": "kprobe",
    "attach_uprobe": "uprobe", "attach_uretprobe": "uprobe", "attach_usdt": "uprobe",
    "load_tracing": "tracing", "attach_tracing": "tracing", "attach_iter": "iter",
    "attach_perf_event": "perf_event", "CounterArray": "perf_event",
    "attach_socket_filter": "socket", "attach_xdp": "xdp", "attach_tc": "tc",
}


__getattr__ = lazy_exports(__name__, _LAZY, globals())
