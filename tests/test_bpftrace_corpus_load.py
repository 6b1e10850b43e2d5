"""Issue 19's promise "never a verifier rejection for something the checker could
see": every program of the semantic corpus that bpftrace 0.17 accepts
(``tests/data/bpftrace_semantic_corpus.txt``, ``[accepted]``) is lowered and loaded
into this kernel (maps created, programs through the verifier, nothing attached).
Each one either loads or stops before the kernel with a pybpf error: located
(bpftrace's ``stdin:L:C-C: ERROR:`` with the source line) when it is about a node of
the program, or the stack-size error of the compiler. A load failure is a defect:
the lowering must be fixed or the case turned into a located error."""

from __future__ import annotations

import io
import os
from typing import Tuple

import pytest

from test_bpftrace_semantic import _corpus

from pybpf.bpftrace.lower import lower_program
from pybpf.bpftrace.runtime import Output, Runtime
from pybpf.bpftrace.session import TraceOptions, compile_error_text, front
from pybpf.compiler.errors import CompileError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (loads programs)")

ACCEPTED = _corpus("accepted")


def _outcome(prog: str, params: Tuple[str, ...], level: int = 0) -> Tuple[str, str]:
    opts = TraceOptions(params=list(params), helper_check_level=level)
    result = front(prog, "stdin", opts)          # bpftrace accepts it: so do we
    try:
        mod = lower_program(result, opts)
    except CompileError as exc:
        return "compile error", compile_error_text(exc, prog, "stdin")
    rt = Runtime(result, mod, opts, Output(io.StringIO(), "full"))
    try:
        rt.load()
        return "loaded", ""
    except OSError as exc:
        return "load failure", str(exc)
    finally:
        rt.close()


@pytest.mark.parametrize("prog,params", ACCEPTED, ids=lambda x: str(x)[:60])
@pytest.mark.parametrize("level", [0, 2], ids=["", "-kk"])
def test_accepted_program_loads_or_has_a_located_error(prog: str, params, level: int
                                                       ) -> None:
    """Also with ``-kk``'s checks after every helper call."""
    kind, text = _outcome(prog, params, level)
    assert kind != "load failure", text
    if kind == "compile error":
        first = text.split("\n")[0]
        assert first.startswith("stdin:1:") and ": ERROR: " in first \
            or first.startswith("ERROR: error: p0_0 needs ") and "bytes of stack" in first, \
            text
