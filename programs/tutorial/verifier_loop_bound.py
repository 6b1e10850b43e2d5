#!/usr/bin/env python3
"""Lesson: a loop the verifier cannot bound.

The verifier proves a program ends by walking it: it follows each path, instruction by
instruction, through every round of a loop, until the path exits. A loop passes when
each round changes something the verifier tracks, until its exit condition must hold
(a counter it knows exactly, going up to a constant). It is refused when the loop
would never have to end as far as the verifier knows: if it arrives at the loop's head
in exactly a state it has seen there before on the same path, it says
``infinite loop detected``; if the states keep changing forever, it gives up after a
million instructions (``BPF program is too large``).

**In pybpf's language such a loop does not compile:** ``while`` is refused with
"while loops are not supported: the verifier needs a bound (hint: use for i in
range(N) with a constant N, and break)". So the refused version is in assembly,
``verifier_loop_bound_refused.s``: it counts ``x`` (the packet's first 8 bytes) up
until it wraps around to 0. The verifier knows nothing of x: at the loop's head R6
is ``scalar()`` on the first round (p0); on the path where ``x != 0`` held (p1) it is
``scalar(umin=1)``; ``+1`` makes it ``scalar()`` again, and the next arrival at the
head, where ``x != 0`` held once more, is p1's state exactly. It refuses **instruction
6** (``r6 += 1``, the loop's head) with ``infinite loop detected at insn 6``, printing
the two equal states. Click instruction 6 in the page: the visits of p0 and p1 show
the state; the third arrival, refused, is not printed as a visit.

The fix, :func:`bounded` below, gives the loop a constant bound (at most 16 rounds)
and keeps the same exit test as a ``break``. The verifier walks the 16 rounds with ``i``
known exactly in each, and accepts.

Run ``python3 programs/tutorial/verifier_loop_bound.py --html /tmp/lesson`` (as root);
``docs/img/explain-loop-bound.png`` is the refused page.
"""

from pybpf.dsl import Struct, u64, xdp


class Word(Struct):
    x: u64


@xdp()
def bounded(ctx):
    w = ctx.load(Word, 0)
    if w is None:
        return 1
    x = w.x
    for i in range(16):         # a constant bound the verifier can count
        x += 1
        if x == 0:
            break
    return 2


def main(argv=None) -> int:
    from _explain_lesson import explain_lesson
    return explain_lesson("verifier_loop_bound", ["verifier_loop_bound_refused.s",
                                                  "verifier_loop_bound.py"], argv)


if __name__ == "__main__":
    raise SystemExit(main())
