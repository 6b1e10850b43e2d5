#!/usr/bin/env python3
"""Lesson: the verifier and a missing NULL check.

A helper that looks something up may find nothing: ``bpf_map_lookup_elem`` returns a
pointer to the value or NULL, ``bpf_sk_lookup_tcp`` a socket or NULL. The verifier
types such a result ``map_value_or_null`` or ``sock_or_null`` and refuses any access
through it until a comparison with 0 has split the paths: on the path where the
pointer is not 0 its type becomes ``map_value`` (or ``sock``), and there it may be read.

**In pybpf's language this mistake does not compile.** ``counts.get(k)`` has the type
"value or None", and using it unchecked is a compile error, long before the kernel::

    v = counts.get(k)
    v[0] += 1          # error: 'v' may be None here
                       # (hint: check it first: 'if v:' or 'if v is None: return')

That is the point of a sound language: the check the verifier demands is part of the
type. :func:`count` below is the checked version and loads. To see the kernel's own
refusal, the lesson uses assembly, where nothing stops you:

- ``verifier_null_check_refused.s`` reads ``sk->family`` straight after
  ``bpf_sk_lookup_tcp``. The verifier refuses **instruction 11**,
  ``r1 = *(u32 *)(r0 + 4)``, with ``R0 invalid mem access 'sock_or_null'``: in the
  state panel of that instruction R0's type is ``sock_or_null``.
- ``verifier_null_check_fixed.s`` adds ``if r0 == 0 goto none``. Click the read after
  it: R0 is now ``sock``. (A looked-up socket is also a reference the program must give
  back with ``bpf_sk_release``: leave that out and the verifier refuses the ``exit``
  with "Unreleased reference".)

Run ``python3 programs/tutorial/verifier_null_check.py --html /tmp/lesson`` (as root)
to print what the verifier saw of all three and write the pages;
``docs/img/explain-null-check.png`` is the refused one.
"""

from pybpf.dsl import HashMap, u32, u64, xdp

counts = HashMap(u32, u64, max_entries=4)


@xdp()
def count(ctx):
    v = counts.get(u32(0))
    if v is None:               # without this line: a compile error, see above
        counts[u32(0)] = 1
    else:
        v[0] += 1
    return 2


def main(argv=None) -> int:
    from _explain_lesson import explain_lesson
    return explain_lesson("verifier_null_check", ["verifier_null_check_refused.s",
                                                  "verifier_null_check_fixed.s",
                                                  "verifier_null_check.py"], argv)


if __name__ == "__main__":
    raise SystemExit(main())
