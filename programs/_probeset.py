"""Loading one small program per attach point, for the tools whose probes come from a
pattern (funccount, stackcount): the program text is a few instructions built with
:mod:`pybpf.asm.builder` (each probe differs only in a constant, as BCC's generated C
does), loaded with :class:`pybpf.program.ProgramSpec` and attached with
:mod:`pybpf.link`. :class:`ProbeSet` owns every map, program and link and releases them
on ``close()`` (and on errors part way); its ``run()`` is the DSL module's run loop, so
:func:`pybpf.tooling.run_tool` drives it like any tool.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

from pybpf.asm import R0, R1, R2, R3, R4, R6, R10
from pybpf.asm.builder import (
    DW, W, Label, add, atomic_add, build, call, exit_, ja, jeq, jne, ld_map_fd, mov, rsh, st,
    stx,
)
from pybpf.dsl.loader import LoadedModule

if __package__:     # python3 -m programs.NAME: the helpers are its siblings
    from ._probespec import Target
else:               # programs/NAME.py, pybpf run NAME (programs/ on the path)
    from _probespec import Target

__all__ = ["ProbeSet", "filters", "count_program", "stack_program", "attach_target",
           "STACK_KEY_SIZE"]

BPF_F_USER_STACK = 1 << 8
BPF_NOEXIST = 1
#: stackcount's key: tgid (u32, ~0 when not per process), user stack id, kernel stack
#: id (i32, -1 when not collected) and comm (16 bytes, zero when not per process)
STACK_KEY_SIZE = 28


def filters(pid: int = 0, cpu: Optional[int] = None) -> List[Any]:
    """Instructions that leave the program (at label ``out``) unless the current process
    is ``pid`` (when non-zero) and the CPU is ``cpu`` (when given)."""
    out: List[Any] = []
    if pid:
        out += [call("get_current_pid_tgid"), rsh(R0, 32), jne(R0, pid, "out")]
    if cpu is not None:
        out += [call("get_smp_processor_id"), jne(R0, cpu, "out")]
    return out


def count_program(index: int, pid: int = 0, cpu: Optional[int] = None) -> List[Any]:
    """``counts[index] += 1`` (an array map of u64), after the filters."""
    return build(filters(pid, cpu) + [
        mov(R1, index), stx(W, R10, -4, R1),
        mov(R2, R10), add(R2, -4),
        ld_map_fd(R1, "counts"),
        call("map_lookup_elem"),
        jeq(R0, 0, "out"),
        mov(R1, 1), atomic_add(DW, R0, 0, R1),
        Label("out"), mov(R0, 0), exit_(),
    ])


def stack_program(pid: int = 0, cpu: Optional[int] = None, *, user: bool = True,
                  kernel: bool = True, per_pid: bool = False) -> List[Any]:
    """Count the (tgid, user stack, kernel stack, comm) key in hash map ``counts``;
    the stacks go to stack trace map ``stacks``. Key layout: :data:`STACK_KEY_SIZE`."""
    key = -32                              # r10-32 .. r10-5: the key; r10-40: the value
    code: List[Any] = [mov(R6, R1)] + filters(pid, cpu)
    if per_pid:
        code += [call("get_current_pid_tgid"), rsh(R0, 32), stx(W, R10, key, R0)]
    else:
        code += [st(W, R10, key, -1)]
    for off, wanted, flags in ((key + 4, user, BPF_F_USER_STACK), (key + 8, kernel, 0)):
        if wanted:
            code += [mov(R1, R6), ld_map_fd(R2, "stacks"), mov(R3, flags),
                     call("get_stackid"), stx(W, R10, off, R0)]
        else:
            code += [st(W, R10, off, -1)]
    code += [st(W, R10, key + off, 0) for off in (12, 16, 20, 24)]
    if per_pid:
        code += [mov(R1, R10), add(R1, key + 12), mov(R2, 16), call("get_current_comm")]
    code += [
        mov(R2, R10), add(R2, key), ld_map_fd(R1, "counts"), call("map_lookup_elem"),
        jeq(R0, 0, "new"),
        mov(R1, 1), atomic_add(DW, R0, 0, R1), ja("out"),
        Label("new"),
        st(DW, R10, -40, 1),
        ld_map_fd(R1, "counts"), mov(R2, R10), add(R2, key), mov(R3, R10), add(R3, -40),
        mov(R4, BPF_NOEXIST), call("map_update_elem"),
        Label("out"), mov(R0, 0), exit_(),
    ]
    return build(code)


def attach_target(prog: Any, target: Target, pid: int = 0) -> Any:
    """Attach ``prog`` at ``target`` (uprobes and USDT only in ``pid`` when non-zero)."""
    from pybpf import link as L
    upid = pid if pid else -1
    if target.kind == "tracepoint":
        return L.attach_tracepoint(prog, target.name)
    if target.kind == "kprobe":
        return L.attach_kprobe(prog, target.name)
    if target.kind == "uprobe":
        return L.attach_uprobe(prog, target.path, offset=target.offset, pid=upid)
    return L.attach_usdt(prog, target.path, target.name, provider=target.provider,
                         pid=upid)


class ProbeSet:
    """Maps, programs and links of a pattern tool, released together by ``close()``
    (``with`` works). ``maps`` by name; ``targets`` the attach points in order."""

    def __init__(self) -> None:
        self.maps: Dict[str, Any] = {}
        self.programs: List[Any] = []
        self.links: List[Any] = []
        self.readers: Dict[str, Any] = {}          # no event rings: run() sleeps
        self.targets: List[Target] = []
        self._closed = False

    @classmethod
    def load(cls, name: str, targets: Sequence[Target], maps: Dict[str, Any],
             program: Callable[[int], List[Any]], pid: int = 0) -> "ProbeSet":
        """Create ``maps`` (name -> :class:`pybpf.maps.spec.MapSpec`), then for each
        target load ``program(index)`` (named ``name``) and attach it there."""
        from pybpf.program import ProgramSpec
        from pybpf.syscall.bpf import ProgType
        self = cls()
        try:
            for map_name, spec in maps.items():
                self.maps[map_name] = spec.create()
            for index, target in enumerate(targets):
                ptype = ProgType.TRACEPOINT if target.kind == "tracepoint" \
                    else ProgType.KPROBE
                prog = ProgramSpec(ptype, program(index), name=name[:15]).load(
                    maps=self.maps)
                self.programs.append(prog)
                self.links.append(attach_target(prog, target, pid))
                self.targets.append(target)
        except BaseException:
            self.close()
            raise
        return self

    def __getitem__(self, name: str) -> Any:
        return self.maps[name]

    #: the DSL module's loop: sleeps until Ctrl-C/SIGTERM, a duration or ``until()``,
    #: calling ``on_interval()`` every interval
    run = LoadedModule.run

    def close(self) -> None:
        """Detach every link, then release the programs and maps (idempotent)."""
        if self._closed:
            return
        self._closed = True
        for group in (self.links, self.programs, list(self.maps.values())):
            for obj in group:
                try:
                    obj.close()
                except Exception:                  # pragma: no cover - keep closing
                    pass
        self.links.clear()
        self.programs.clear()
        self.maps.clear()

    def __enter__(self) -> "ProbeSet":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
