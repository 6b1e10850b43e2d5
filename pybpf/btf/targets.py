"""Attach targets: the BTF type id (and, for a kernel module, the BTF object) that a
tracing, LSM or iterator program names at load time (``attach_btf_id`` with
``attach_btf_obj_fd``: Linux 5.5; module targets 5.11).

What each kind of program looks up in kernel BTF:

=========  ==============================  =========================================
kind       the type looked up              programs
=========  ==============================  =========================================
func       FUNC ``name``                   fentry, fexit, fmod_ret (5.5/5.7), kprobe
tp_btf     TYPEDEF ``btf_trace_<name>``    tp_btf (5.5)
lsm        FUNC ``bpf_lsm_<name>``         lsm (5.7)
iter       FUNC ``bpf_iter_<name>``        iter (5.8)
=========  ==============================  =========================================

The name is looked for in vmlinux and in every module's BTF under ``/sys/kernel/btf``;
``"module:name"`` (or ``module=``) restricts the search to one module, and
``"vmlinux:name"`` to the kernel proper. A name found in more than one place is refused
with :class:`~pybpf.btf.errors.AmbiguousTypeError` listing where.
"""

from __future__ import annotations

import errno as _errno
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from ..syscall.fd import FD
from .errors import AmbiguousTypeError, TypeNotFoundError
from .format import Kind
from .parser import BTF, load_module, module_names, vmlinux

__all__ = ["Target", "find_target", "TARGET_KINDS", "btf_object_id", "open_btf_object"]

#: kind -> (BTF kind looked up, name prefix)
TARGET_KINDS: Dict[str, Tuple[Kind, str]] = {
    "func": (Kind.FUNC, ""),
    "tp_btf": (Kind.TYPEDEF, "btf_trace_"),
    "lsm": (Kind.FUNC, "bpf_lsm_"),
    "iter": (Kind.FUNC, "bpf_iter_"),
}
_ALIASES = {"fentry": "func", "fexit": "func", "fmod_ret": "func", "kprobe": "func",
            "kretprobe": "func", "function": "func", "raw_tp": "tp_btf",
            "tracepoint": "tp_btf", "tp": "tp_btf", "lsm_cgroup": "lsm"}


class Target:
    """A resolved attach target.

    ``type_id`` is the id in the BTF of ``module`` (``"vmlinux"`` or a module's name);
    ``btf_fd`` is 0 for vmlinux, else an owned :class:`~pybpf.syscall.fd.FD` of the
    module's BTF object, for ``attach_btf_obj_fd``: close it (or use the target as a
    context manager) once the program is loaded. ``name`` is the BTF name found
    (``btf_trace_sched_switch``), ``kind`` the target kind. A target unpacks as
    ``btf_fd, type_id = target``.
    """

    __slots__ = ("btf_fd", "type_id", "name", "kind", "module", "btf")

    def __init__(self, btf_fd: Union[FD, int], type_id: int, name: str, kind: str,
                 module: str, btf: BTF) -> None:
        self.btf_fd = btf_fd
        self.type_id = type_id
        self.name = name
        self.kind = kind
        self.module = module
        self.btf = btf

    def __iter__(self) -> Iterator[Any]:
        return iter((self.btf_fd, self.type_id))

    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> Any:
        return (self.btf_fd, self.type_id)[index]

    @property
    def is_module(self) -> bool:
        """True when the target is in a kernel module."""
        return self.module != "vmlinux"

    def fileno(self) -> int:
        """The BTF object fd number (0 for vmlinux)."""
        return self.btf_fd.fileno() if isinstance(self.btf_fd, FD) else int(self.btf_fd)

    def close(self) -> None:
        """Close the module BTF fd, if any."""
        if isinstance(self.btf_fd, FD):
            self.btf_fd.close()

    def __enter__(self) -> "Target":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"Target({self.kind} {self.name!r} in {self.module}, type_id={self.type_id},"
                f" btf_fd={self.btf_fd!r})")


_OBJECT_IDS: Dict[str, int] = {}


def _each_kernel_btf() -> Iterator[Tuple[int, str, FD]]:
    """(object id, name, open fd) of each kernel BTF object; the caller closes fds it
    keeps, the others are closed here after the caller moves on."""
    from ..syscall import objects
    next_id: Optional[int] = 0
    while True:
        next_id = objects.btf_get_next_id(next_id or 0)
        if next_id is None:
            return
        try:
            fd = objects.btf_get_fd_by_id(next_id)
        except OSError as exc:
            if exc.errno == _errno.ENOENT:       # gone in the meantime
                continue
            raise
        try:
            info = objects.btf_info(fd)
        except OSError:
            fd.close()
            continue
        if not info.kernel_btf:
            fd.close()
            continue
        yield next_id, info.name, fd


def open_btf_object(module: str) -> FD:
    """An owned fd of the kernel BTF object of ``module`` (``"vmlinux"`` or a module
    name; Linux 5.11 names them), found by walking the BTF ids (needs CAP_SYS_ADMIN)."""
    from ..syscall import objects
    known = _OBJECT_IDS.get(module)
    if known is not None:
        try:
            fd = objects.btf_get_fd_by_id(known)
            if objects.btf_info(fd).name == module:
                return fd
            fd.close()
        except OSError:
            pass
        _OBJECT_IDS.pop(module, None)
    for obj_id, name, fd in _each_kernel_btf():
        _OBJECT_IDS[name] = obj_id
        if name == module:
            return fd
        fd.close()
    raise TypeNotFoundError(f"no kernel BTF object is named {module!r} (is the module "
                            "loaded? kernels before 5.11 do not name BTF objects)")


def btf_object_id(module: str = "vmlinux") -> int:
    """The kernel's id of the BTF object of ``module``."""
    open_btf_object(module).close()
    return _OBJECT_IDS[module]


def _normalise(kind: str) -> str:
    k = str(kind).strip().lower()
    k = _ALIASES.get(k, k)
    if k not in TARGET_KINDS:
        raise ValueError(f"unknown attach target kind {kind!r} (known: "
                         f"{', '.join(TARGET_KINDS)})")
    return k


def find_target(name: str, kind: str = "func", *, module: Optional[str] = None) -> Target:
    """The attach target ``name`` of ``kind`` (``"func"``, ``"tp_btf"``, ``"lsm"``,
    ``"iter"``; fentry/fexit/kprobe/raw_tp and the like are accepted as aliases).

    ``name`` may carry the kind's prefix already (``bpf_lsm_file_open``) and may be
    qualified as ``"module:name"``. Raises
    :class:`~pybpf.btf.errors.TypeNotFoundError` (a ``KeyError``) when nothing matches
    and :class:`~pybpf.btf.errors.AmbiguousTypeError` listing the candidates when the
    name is in more than one BTF or names several types in one.
    """
    k = _normalise(kind)
    btf_kind, prefix = TARGET_KINDS[k]
    text = name.strip()
    if ":" in text and module is None:
        module, text = (part.strip() for part in text.split(":", 1))
    full = text if text.startswith(prefix) else prefix + text
    places: List[Tuple[str, BTF]] = []
    if module in (None, "vmlinux"):
        places.append(("vmlinux", vmlinux()))
    if module is None:
        for mod in module_names():
            try:
                places.append((mod, load_module(mod)))
            except (OSError, ValueError):
                continue        # unloaded meanwhile, or unreadable
    elif module != "vmlinux":
        places.append((module, load_module(module)))
    found: List[Tuple[str, int, BTF]] = []
    for where, btf in places:
        own = where != "vmlinux"
        for type_id in btf.ids(full, btf_kind, own=own):
            found.append((where, type_id, btf))
    if not found:
        scope = f" in {module}" if module else " in vmlinux or any module"
        raise TypeNotFoundError(f"no {k} attach target {text!r}: no {btf_kind.name} "
                                f"named {full!r}{scope}")
    if len(found) > 1:
        candidates = [(where, type_id, btf_kind.name.lower()) for where, type_id, _ in found]
        listed = ", ".join(f"{where}:{full} [{type_id}]" for where, type_id, _ in found)
        raise AmbiguousTypeError(f"{k} attach target {text!r} is ambiguous: {listed}; "
                                 "qualify it as 'module:name'", candidates)
    where, type_id, btf = found[0]
    fd: Union[FD, int] = 0 if where == "vmlinux" else open_btf_object(where)
    return Target(fd, type_id, full, k, where, btf)
