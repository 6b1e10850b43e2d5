"""Links: the object every attach returns.

A :class:`Link` owns what keeps one attachment alive: descriptors (a ``bpf_link``, a
perf event) and undo steps for what outlives descriptors (a tracefs probe definition, a
netlink filter, a socket option). ``close()`` releases all of it, in reverse order of
creation, once; so do ``with``, garbage collection (with a :class:`ResourceWarning`),
interpreter exit and SIGINT/SIGTERM.

**Exit and signals.** Open links are kept in a weak registry. The first link created
installs an :mod:`atexit` hook and, from the main thread, handlers for SIGINT and SIGTERM
that close every open link and then hand the signal to the handler that was there
before (Python's ``KeyboardInterrupt`` for SIGINT; for a default SIGTERM the default
action is restored and the signal raised again, so the process still dies of it). A
previously ignored signal stays ignored and closes nothing. :func:`set_signal_cleanup`
turns the handlers off (call it before the first attach).

**fork.** A child process does not own its parent's attachments: its registry starts
empty, and undo steps (which change state shared with the parent, such as tracefs
definitions) run only in the process that attached.
"""

from __future__ import annotations

import atexit
import os
import _thread
import warnings
import weakref
from typing import Any, Callable, Dict, Iterable, List, Optional, Union

try:                    # the C module: signal.py turns its constants into enums, ~1 ms of
    import _signal as signal        # a tool's start; the handlers are the same
except ImportError:     # pragma: no cover - other interpreters
    import signal                   # type: ignore[no-redef]

from ..syscall import progs as _progs
from ..syscall.errors import NotSupportedError
from ..syscall.fd import FD, FdLike, fd_number

__all__ = ["Link", "MultiLink", "close_all", "open_links", "set_signal_cleanup",
           "prog_fd_of"]

_registry: "weakref.WeakSet[Link]" = weakref.WeakSet()
_lock = _thread.RLock()
_hooks_installed = False
_signal_cleanup = True
_previous: Dict[int, Any] = {}


def prog_fd_of(prog: FdLike) -> int:
    """The descriptor number of a program (a :class:`~pybpf.program.Program`, an
    :class:`~pybpf.syscall.fd.FD` or an int)."""
    return fd_number(prog)


def open_links() -> List["Link"]:
    """The links of this process that are still open."""
    with _lock:
        return [link for link in list(_registry) if not link.closed]


def close_all() -> None:
    """Close every open link of this process (what exit and SIGINT/SIGTERM do)."""
    for link in open_links():
        try:
            link.close()
        except Exception:           # keep closing the others
            pass


def set_signal_cleanup(enabled: bool) -> None:
    """Whether attaching installs the SIGINT/SIGTERM handlers (default True). Turning it
    off after they were installed puts the previous handlers back."""
    global _signal_cleanup
    _signal_cleanup = enabled
    if not enabled and _hooks_installed:
        for signum, previous in list(_previous.items()):
            if signal.getsignal(signum) is _on_signal:
                signal.signal(signum, previous)
        _previous.clear()


def _on_signal(signum: int, frame: Any) -> None:
    close_all()
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        previous(signum, frame)
    elif previous == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    atexit.register(close_all)
    if not _signal_cleanup:
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)
        if previous == signal.SIG_IGN or previous is None:
            continue                # ignored (or set from C): leave it alone
        try:
            signal.signal(signum, _on_signal)
        except ValueError:          # not the main thread: handlers are the main thread's
            return
        _previous[signum] = previous


def _after_fork_in_child() -> None:
    with _lock:
        for link in list(_registry):
            link._forked = True
        _registry.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


Undo = Callable[[], None]


class Link:
    """One attachment.

    ``kind`` names the mechanism (``"tracepoint"``, ``"kprobe"``, ``"xdp"``) and
    ``target`` what it is attached to (``"syscalls:sys_enter_openat"``). ``fd`` is the
    main descriptor (a ``bpf_link`` when ``is_bpf_link``, else a perf event or None);
    ``fds`` are further descriptors owned; ``undo`` are steps run after the descriptors
    are closed (tracefs probe removal, netlink detach), only in the attaching process.

    * :meth:`close`: release this process's hold. A pinned ``bpf_link`` stays attached.
    * :meth:`detach`: end the attachment even if the link is pinned (``BPF_LINK_DETACH``,
      Linux 5.9), then close.
    * :meth:`pin` / :meth:`info` / :meth:`update`: for ``bpf_link`` links only.
    """

    def __init__(self, kind: str, target: str, fd: Optional[FD] = None, *,
                 is_bpf_link: bool = False, fds: Iterable[FD] = (),
                 undo: Iterable[Undo] = (), details: Optional[Dict[str, Any]] = None) -> None:
        self.kind = kind
        self.target = target
        self._fd = fd
        self.is_bpf_link = is_bpf_link
        self._fds: List[FD] = list(fds)
        self._undo: List[Undo] = list(undo)
        #: mechanism-specific facts (``"mode": "pmu"``, ``"event": "pybpf/..."``)
        self.details: Dict[str, Any] = dict(details or {})
        self._pid = os.getpid()
        self._forked = False
        self._closed = False
        with _lock:
            _install_hooks()
            _registry.add(self)

    # -- descriptors ----------------------------------------------------------------------
    def fileno(self) -> int:
        """The main descriptor's number (the ``bpf_link`` or the perf event)."""
        if self._closed or self._fd is None:
            raise ValueError(f"{self!r} has no open descriptor")
        return self._fd.fileno()

    @property
    def fd(self) -> Optional[FD]:
        """The main descriptor, or None."""
        return self._fd

    @property
    def closed(self) -> bool:
        """True once :meth:`close` (or :meth:`detach`) ran."""
        return self._closed

    def add_undo(self, step: Undo) -> None:
        """Register one more step for :meth:`close` (run before the earlier ones)."""
        self._undo.append(step)

    # -- ending ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release everything this link holds, once; later calls do nothing. Errors of
        individual steps do not stop the others; the first is raised at the end."""
        with _lock:
            if self._closed:
                return
            self._closed = True
            _registry.discard(self)
        first: Optional[BaseException] = None
        fds = ([self._fd] if self._fd is not None else []) + self._fds
        for fd in fds:
            try:
                fd.close()
            except OSError as exc:
                first = first or exc
        if not self._forked and os.getpid() == self._pid:
            for step in reversed(self._undo):
                try:
                    step()
                except Exception as exc:          # keep undoing the rest
                    first = first or exc
        self._undo.clear()
        if first is not None:
            raise first

    def detach(self) -> None:
        """End the attachment, even if the link is pinned, and close the link."""
        if not self._closed and self.is_bpf_link and self._fd is not None:
            try:
                _progs.link_detach(self._fd)
            except NotSupportedError:
                pass                # before 5.9: closing is all there is
            except OSError:
                pass                # e.g. EOPNOTSUPP for link types without detach
        self.close()

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_closed", True):
            return
        warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
        try:
            self.close()
        except Exception:
            pass

    # -- bpf_link only --------------------------------------------------------------------
    def _link_fd(self) -> FD:
        if not self.is_bpf_link or self._fd is None or self._closed:
            raise ValueError(f"{self!r} is not an open bpf_link")
        return self._fd

    def pin(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Pin the ``bpf_link`` in a BPF file system (Linux 5.7): the attachment then
        survives this process until the pin is removed."""
        from ..syscall import objects
        objects.obj_pin(self._link_fd(), path)

    def info(self) -> Any:
        """What the kernel says about the ``bpf_link`` (Linux 5.8): a
        :class:`pybpf.syscall.objects.LinkInfo`."""
        from ..syscall import objects
        return objects.link_info(self._link_fd())

    def update(self, prog: FdLike) -> None:
        """Swap the program of the ``bpf_link`` in place (Linux 5.7; not every link type
        supports it)."""
        _progs.link_update(self._link_fd(), prog)

    def __repr__(self) -> str:
        state = "closed" if self._closed else ("fd=%d" % self._fd.fileno()
                                               if self._fd is not None and not self._fd.closed
                                               else "open")
        return f"<{type(self).__name__} {self.kind} {self.target!r} {state}>"


class MultiLink(Link):
    """Several links that act as one (a sampling event on every CPU, a USDT probe at
    several sites): ``close()`` closes them all."""

    def __init__(self, kind: str, target: str, links: Iterable[Link],
                 details: Optional[Dict[str, Any]] = None) -> None:
        self.links: List[Link] = list(links)
        for link in self.links:
            with _lock:
                _registry.discard(link)          # closed through this one
        super().__init__(kind, target, None, undo=[l.close for l in self.links],
                         details=details)

    def __len__(self) -> int:
        return len(self.links)
