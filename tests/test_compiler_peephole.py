"""The shared back end's clean-up pass (pybpf/compiler/peephole.py) on hand-made
instruction lists: what it drops, what it must keep, and that the result computes what
the input did (run on pybpf.vm, the ISA's reference interpreter)."""

from __future__ import annotations

from typing import List

import pytest

from pybpf.asm import R0, R1, R2, Instruction, link
from pybpf.asm.builder import W, add, call, exit_, ja, jeq, jne, ldx, may_goto, mov, rsh
from pybpf.compiler.peephole import drop_jumps_to_next, fold_moves
from pybpf.vm import Machine


def labelled(ins: Instruction, label: str) -> Instruction:
    return ins.replace(label=label)


def run(insns: List[Instruction], word: int) -> int:
    return Machine(link(insns), mem=word.to_bytes(4, "little")).run()


def text(insns: List[Instruction]) -> List[str]:
    return [str(i) for i in link(insns)]


def test_an_empty_predicate_folds_to_nothing_but_the_call():
    """``/pid == N/ { }``: the jump to the next instruction goes, and with it the
    compare's now unread operands; the helper call stays (a call is not a pure write)."""
    body = [call("get_current_pid_tgid"), mov(R2, R0), rsh(R2, 32), jne(R2, 1234, "end"),
            labelled(mov(R0, 0), "end"), exit_()]
    assert text(fold_moves(body)) == text([call("get_current_pid_tgid"), mov(R0, 0),
                                           exit_()])


@pytest.mark.parametrize("word", [0, 1, 5, 6, 7, 0xFFFFFFFF])
def test_dropping_jumps_to_the_next_instruction_keeps_the_result(word):
    body = [ldx(W, R1, R1, 0), mov(R0, 1), jeq(R1, 5, "a"), labelled(add(R0, 2), "a"),
            ja("b"), labelled(add(R0, 4), "b"), jne(R1, 6, "c"), labelled(add(R0, 8), "c"),
            jeq(R1, 7, "d"), add(R0, 16), labelled(exit_(), "d")]
    folded = drop_jumps_to_next(body)
    assert len(folded) == len(body) - 3          # the three jumps whose target is next
    assert run(folded, word) == run(body, word)


def test_labelled_jumps_and_may_goto_stay():
    """A jump that is itself a target keeps its place (its label would be lost), and
    ``may_goto`` is a counted jump, not a plain one."""
    body = [mov(R0, 0), jeq(R0, 0, "x"), labelled(ja("y"), "x"), labelled(may_goto("z"), "y"),
            labelled(exit_(), "z")]
    kept = drop_jumps_to_next(body)
    assert text(kept) == text(body[:1] + body[2:])
    assert text(drop_jumps_to_next([mov(R0, 0), may_goto("z"), labelled(exit_(), "z")])) \
        == text([mov(R0, 0), may_goto("z"), labelled(exit_(), "z")])
