"""BTF-based tracing programs: fentry, fexit, fmod_ret, tp_btf and LSM.

These programs name their target when they are loaded, as a BTF type id in the kernel's
BTF (``attach_btf_id``, plus ``attach_btf_obj_fd`` for a target in a module):

=========  ==============================  ===================  ==============  =====
kind       program type / attach type      BTF looked up        arguments       Linux
=========  ==============================  ===================  ==============  =====
fentry     TRACING / TRACE_FENTRY          FUNC name            the function's  5.5
fexit      TRACING / TRACE_FEXIT           FUNC name            + return value  5.5
fmod_ret   TRACING / MODIFY_RETURN         FUNC name            (may override)  5.7
tp_btf     TRACING / TRACE_RAW_TP          TYPEDEF btf_trace_*  tracepoint's    5.5
lsm        LSM / LSM_MAC                   FUNC bpf_lsm_<hook>  the hook's      5.7
=========  ==============================  ===================  ==============  =====

:func:`tracing_spec` builds the :class:`~pybpf.program.ProgramSpec` (the id from
:func:`pybpf.btf.find_target` for a name, or an id given as an int);
:func:`load_tracing` loads it; :func:`attach_tracing` attaches the loaded program
(``BPF_RAW_TRACEPOINT_OPEN`` without a name, or ``BPF_LINK_CREATE`` when a cookie is
wanted, Linux 5.19) and returns a ``bpf_link``. fmod_ret works on functions that allow
error injection and on ``security_*`` hooks; LSM programs need ``bpf`` among the active
LSMs (``lsm=`` or ``CONFIG_LSM``) to be called.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union

from ..syscall import progs as _progs
from ..syscall.bpf import AttachType, ProgType
from ..syscall.fd import FD, FdLike
from .base import Link

__all__ = ["TRACING_KINDS", "tracing_spec", "load_tracing", "attach_tracing",
           "resolve_btf_target"]

#: kind -> (program type, attach type, pybpf.btf target kind)
TRACING_KINDS: Dict[str, Tuple[int, int, str]] = {
    "fentry": (ProgType.TRACING, AttachType.TRACE_FENTRY, "func"),
    "fexit": (ProgType.TRACING, AttachType.TRACE_FEXIT, "func"),
    "fmod_ret": (ProgType.TRACING, AttachType.MODIFY_RETURN, "func"),
    "tp_btf": (ProgType.TRACING, AttachType.TRACE_RAW_TP, "tp_btf"),
    "lsm": (ProgType.LSM, AttachType.LSM_MAC, "lsm"),
    "iter": (ProgType.TRACING, AttachType.TRACE_ITER, "iter"),
}


def _kind(kind: str) -> Tuple[int, int, str]:
    try:
        return TRACING_KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown tracing kind {kind!r} (known: "
                         f"{', '.join(TRACING_KINDS)})") from None


def resolve_btf_target(kind: str, target: Union[str, int]) -> Tuple[int, Optional[FD]]:
    """``(BTF type id, module BTF fd or None)`` of ``target`` for ``kind``: an int is
    taken as a vmlinux type id; a name is looked up with :func:`pybpf.btf.find_target`
    (the caller closes the fd after loading). A missing name raises
    :class:`~pybpf.errors.UnknownNameError` (a :class:`LookupError`)."""
    if isinstance(target, int) and not isinstance(target, bool):
        return target, None
    _, _, btf_kind = _kind(kind)
    try:
        from ..btf import find_target
        from ..btf.errors import TypeNotFoundError
    except ImportError:                              # pragma: no cover (older tree)
        raise ValueError(f"{kind} target {target!r} by name needs pybpf.btf; pass the "
                         f"BTF type id instead") from None
    try:
        found = find_target(str(target), btf_kind)
    except TypeNotFoundError as exc:
        from ..errors import UnknownNameError
        raise UnknownNameError(f"{kind} target", str(target), detail=str(exc)) from None
    fd = found.btf_fd if isinstance(found.btf_fd, FD) else None
    return found.type_id, fd


def tracing_spec(kind: str, target: Union[str, int], instructions: Sequence[Any], *,
                 name: str = "", license: str = "GPL", flags: int = 0,
                 attach_btf_obj: Optional[FdLike] = None) -> Any:
    """A :class:`~pybpf.program.ProgramSpec` for a ``kind`` program on ``target`` (a
    function, tracepoint, LSM hook or iterator name, or a BTF type id). For a target in
    a module, ``spec.attach_btf_obj`` holds the module's BTF fd: close it after the
    load (:func:`load_tracing` does)."""
    from ..program import ProgramSpec
    prog_type, attach_type, _ = _kind(kind)
    type_id, module_fd = resolve_btf_target(kind, target)
    return ProgramSpec(prog_type, instructions, license=license, attach_type=attach_type,
                       attach_target=str(target), attach_btf_id=type_id,
                       attach_btf_obj=attach_btf_obj if attach_btf_obj is not None
                       else module_fd, name=name, flags=flags)


def load_tracing(kind: str, target: Union[str, int], instructions: Sequence[Any], *,
                 maps: Optional[Mapping[str, Any]] = None, name: str = "",
                 license: str = "GPL", flags: int = 0) -> Any:
    """Build and load a ``kind`` program on ``target`` (see :func:`tracing_spec`);
    returns the :class:`~pybpf.program.Program`. Loading needs CAP_BPF and CAP_PERFMON
    (or root) and a kernel with BTF (``CONFIG_DEBUG_INFO_BTF``)."""
    spec = tracing_spec(kind, target, instructions, name=name, license=license,
                        flags=flags)
    try:
        return spec.load(maps=maps)
    finally:
        if isinstance(spec.attach_btf_obj, FD):
            spec.attach_btf_obj.close()


def attach_tracing(prog: FdLike, *, cookie: int = 0, kind: str = "",
                   target: str = "") -> Link:
    """Attach a loaded fentry/fexit/fmod_ret/tp_btf/LSM program to the target it was
    loaded for. ``cookie`` (``bpf_get_attach_cookie``) uses ``BPF_LINK_CREATE``
    (Linux 5.19); otherwise ``BPF_RAW_TRACEPOINT_OPEN`` (5.5). ``kind`` and ``target``
    label the link (taken from the program's spec when it has one)."""
    spec = getattr(prog, "spec", None)
    if spec is not None:
        target = target or str(spec.attach_target or "")
        if not kind:
            kind = next((k for k, (pt, at, _) in TRACING_KINDS.items()
                         if pt == spec.type and at == spec.attach_type), "tracing")
    if cookie:
        if spec is None:
            raise ValueError("a cookie needs the program's attach type: pass a Program "
                             "loaded from a spec")
        fd = _progs.link_create(prog, spec.attach_type, 0, tracing_cookie=cookie,
                                target_btf_id=0)
    else:
        fd = _progs.raw_tracepoint_open(prog, None)
    return Link(kind or "tracing", target, fd, is_bpf_link=True)
