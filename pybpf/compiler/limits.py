"""The verifier's limits checked at compile time, so a program that cannot load is
refused at its cause with a source line rather than by the kernel.

* **Stack along call chains.** The kernel adds up the stack frames of every chain of
  bpf-to-bpf calls, each frame rounded up to a multiple of 32 bytes (at least 32, even for
  a function without stack), and refuses a chain above 512 bytes ("combined stack size of
  N calls is M. Too large"); a chain may also have at most 8 frames.
* **Instructions the verifier walks.** A bounded loop is verified once per iteration, so
  the verifier processes about ``iterations x body`` instructions for it (nested loops
  multiply, a call costs its callee's walk); it gives up at 1,000,000 processed
  instructions. :func:`walk_estimate` computes that estimate from the final
  instructions, innermost loop first, and names the first loop that goes over.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..asm.instruction import Instruction, SourceLocation
from .errors import CompileError

__all__ = ["MAX_STACK", "MAX_CALL_FRAMES", "MAX_PROCESSED", "STACK_HINT", "frame_cost",
           "check_stack", "walk_estimate"]

#: the combined stack of a call chain the kernel accepts
MAX_STACK = 512
#: the most frames a chain of bpf-to-bpf calls may have
MAX_CALL_FRAMES = 8
#: the instructions the verifier processes before it gives up (privileged loads)
MAX_PROCESSED = 1_000_000

#: the hint of a call chain over :data:`MAX_STACK` (a front end may give its own words)
STACK_HINT = ("keep big records in the ring buffer or in a per-CPU array used as scratch "
              "space, or move locals out of the functions of the deepest chain")


def frame_cost(stack: int) -> int:
    """The bytes the kernel counts for a function using ``stack`` bytes: rounded up to
    a multiple of 32, at least 32."""
    return (max(stack, 1) + 31) // 32 * 32


def _where(loc: Optional[SourceLocation]) -> str:
    return f"{loc.file}:{loc.line}" if loc is not None else "?"


def check_stack(functions: Sequence[Any], hint: str = STACK_HINT) -> None:
    """Refuse the program (``functions``: compiled functions with ``name``, ``stack``
    and ``ir`` (``calls``, ``loc``, ``ops``), the entry first) when a chain of calls
    from the entry needs more stack than the kernel allows (with ``hint``) or has too
    many frames."""
    by_name = {f.name: f for f in functions}
    worst: Tuple[int, List[str]] = (0, [])

    def walk(name: str, chain: List[str], total: int) -> None:
        nonlocal worst
        f = by_name[name]
        chain = chain + [name]
        total += frame_cost(f.stack)
        if len(chain) > MAX_CALL_FRAMES:
            raise CompileError(
                f"the call chain {' -> '.join(chain)} has {len(chain)} frames; BPF "
                f"allows {MAX_CALL_FRAMES}", _call_site(by_name[chain[-2]], name),
                "call fewer functions in a row: inline the small ones")
        if total > worst[0]:
            worst = (total, chain)
        for callee in f.ir.calls:
            if callee in by_name:
                walk(callee, chain, total)

    walk(functions[0].name, [], 0)
    total, chain = worst
    if total <= MAX_STACK or len(chain) < 2:
        return                      # one function alone is checked where it is compiled
    frames = "; ".join(
        f"{n} at {_where(by_name[n].ir.loc)}: {by_name[n].stack} bytes, counted "
        f"{frame_cost(by_name[n].stack)}" for n in chain)
    raise CompileError(
        f"the call chain {' -> '.join(chain)} needs {total} bytes of stack; the kernel "
        f"allows {MAX_STACK} for a whole chain, each frame rounded up to 32 bytes "
        f"({frames})", _call_site(by_name[chain[-2]], chain[-1]), hint)


def _call_site(caller: Any, callee: str) -> Optional[SourceLocation]:
    """Where ``caller`` calls ``callee`` (its def line when not found)."""
    for op in caller.ir.ops:
        if op.kind == "call" and op.name == callee and op.loc is not None:
            return op.loc
    return caller.ir.loc


def _is_local_call(ins: Instruction) -> bool:
    return ins.opcode == 0x85 and ins.src == 1 and isinstance(ins.reference, str)


def walk_estimate(instructions: Sequence[Instruction],
                  loops: Sequence[Tuple[str, int, Optional[SourceLocation]]],
                  aliases: Dict[str, str], callees: Dict[str, int],
                  name: str, loc: Optional[SourceLocation]) -> int:
    """The instructions the verifier will process for one function (``instructions``
    unlinked, with labels): each instruction once, a call its callee's estimate
    (``callees``), a loop (``loops``: its top label, iteration count, source line) its
    iterations times its body. Raises :class:`CompileError` at the first loop (innermost
    first) whose estimate is over :data:`MAX_PROCESSED`, or at ``loc`` for the whole
    function."""
    if not loops:               # the usual case: each instruction once, calls their callee
        whole = len(instructions) + sum(
            [callees.get(i.reference, 0) for i in instructions
             if i.opcode == 0x85 and i.src == 1 and isinstance(i.reference, str)])
        return _checked_whole(whole, name, loc)
    cost = [1 + (callees.get(i.reference, 0) if _is_local_call(i) else 0)
            for i in instructions]
    at = {i.label: n for n, i in enumerate(instructions) if i.label}
    spans = []
    for top, count, where in loops:
        label = aliases.get(top, top)
        start = at.get(label)
        if start is None:
            continue
        ends = [n for n, i in enumerate(instructions) if i.reference == label and n > start]
        if ends:
            spans.append((ends[-1] - start, start, ends[-1], count, where))
    for _, start, end, count, where in sorted(spans):
        body = sum(cost[start:end + 1])
        total = body * max(count, 1)
        if total > MAX_PROCESSED:
            raise CompileError(
                f"this loop makes the verifier walk about {total:,} instructions "
                f"({count:,} iterations x {body:,}); it gives up at "
                f"{MAX_PROCESSED:,}", where,
                f"use a bound below {max(MAX_PROCESSED // max(body, 1), 1):,} (the verifier "
                "checks every iteration), or spread the work over several events or "
                "map entries")
        cost[start:end + 1] = [0] * (end + 1 - start)
        cost[start] = total
    return _checked_whole(sum(cost), name, loc)


def _checked_whole(whole: int, name: str, loc: Optional[SourceLocation]) -> int:
    """``whole``, the estimate of function ``name``; raises :class:`CompileError` at
    ``loc`` when it is over :data:`MAX_PROCESSED`."""
    if whole > MAX_PROCESSED:
        raise CompileError(
            f"{name} makes the verifier walk about {whole:,} instructions (its loops and "
            f"the functions it calls, each call walked again); it gives up at "
            f"{MAX_PROCESSED:,}", loc,
            "use smaller loop bounds, or call the function from fewer places in loops")
    return whole
