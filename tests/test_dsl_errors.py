"""Errors at the boundary between a user's file and the compiler, table-driven.

Each case is a small program written to a file; the same file goes through
``pybpf compile FILE``, ``pybpf run FILE`` (with a ``__main__`` block that loads it)
and the API (``compile_module(path)``). Every failing case must give one line on
stderr, ``file:line:col: error: message (hint: ...)``, exit status 1 and no traceback
on the command line, and a :class:`CompileError` whose ``str()`` starts with the same
location in the API. The cases that compile must keep compiling (and, as root, load).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Tuple

import pytest

from bpfenv import BPF_UNAVAILABLE
from cliharness import assert_one_line_error, run

HEAD = "import sys\nfrom pybpf.dsl import *\n\n"      # lines 1-3 of every case
MAIN = ("\n\nif __name__ == '__main__':\n"
        "    with load(sys.modules[__name__]):\n        pass\n")


def _tracefs() -> str:
    from pybpf.tracefs import event_id
    try:
        event_id("syscalls:sys_enter_getpid")
    except (OSError, LookupError) as exc:
        return f"needs a readable tracefs with syscalls:sys_enter_getpid ({exc})"
    return ""


def _btf() -> str:
    return "" if os.path.exists("/sys/kernel/btf/vmlinux") else \
        "needs the kernel's BTF (/sys/kernel/btf/vmlinux)"


def _kallsyms() -> str:
    from pybpf.link.kprobe import kernel_functions
    return "" if "do_unlinkat" in kernel_functions() else \
        "needs /proc/kallsyms listing do_unlinkat"


NEEDS = {"": lambda: "", "tracefs": _tracefs, "btf": _btf, "kallsyms": _kallsyms}

OK_TP = "@tracepoint('syscalls:sys_enter_getpid')\ndef f(args):\n    return 0\n"

#: (id, what the case needs, body after HEAD, expected line, column, words in the
#: message) -- line and column None: the program is correct
CASES = [
    # a syntax error in the file
    ("syntax", "", "@tracepoint('syscalls:sys_enter_getpid')\ndef f(args)\n    return 0\n",
     5, 12, ("SyntaxError: expected ':'", "hint:")),
    # wrong argument count to a map declaration: the user's line, the signature
    ("map-arguments", "tracefs", "m = ArrayMap(u32, u8, 1)\n" + OK_TP,
     4, 5, ("TypeError: ArrayMap.__init__() takes", "call it as ArrayMap(value, max_entries")),
    ("map-key-type", "tracefs", "m = HashMap(u32, float)\n" + OK_TP,
     4, 5, ("float",)),
    # Struct fields whose types are not pybpf types: the field's own line and column
    ("struct-float", "tracefs", "class E(Struct):\n    a: u32\n    b: float\n\n" + OK_TP,
     6, 8, ("E.b: float is not a pybpf.dsl type", "no floating point")),
    ("struct-negative-array", "tracefs", "class E(Struct):\n    a: u32[-1]\n\n" + OK_TP,
     5, 8, ("positive int length, not -1", "T[N]")),
    ("struct-empty-string", "tracefs", "class E(Struct):\n    a: char[0]\n\n" + OK_TP,
     5, 8, ("positive int length, not 0", "char[16]")),
    ("struct-unknown-name", "tracefs", "class E(Struct):\n    a: u33\n\n" + OK_TP,
     5, 8, ("NameError: name 'u33' is not defined", "did you mean u32?")),
    ("struct-string-annotation", "tracefs", "class E(Struct):\n    a: 'u32'\n\n" + OK_TP,
     5, 8, ("E.a:", "string", "from __future__ import annotations")),
    # decorators without their parentheses or argument
    ("xdp-no-parentheses", "", "@xdp\ndef f(ctx):\n    return XDP_PASS\n",
     4, 2, ("@xdp is used without parentheses", "write @xdp()")),
    ("tracepoint-no-argument", "", "@tracepoint\ndef f(args):\n    return 0\n",
     4, 2, ("@tracepoint is used without parentheses",
            "@tracepoint(\"syscalls:sys_enter_openat\")")),
    ("tracepoint-no-group", "", "@tracepoint('sys_enter_getpid')\ndef f(args):\n    return 0\n",
     4, 2, ("'group:name'", "'sys_enter_getpid'")),
    # attach points that do not exist: the decorator's line, at the name
    ("missing-tracepoint", "tracefs",
     "@tracepoint(\"syscalls:sys_enter_nosuch\")\ndef f(args):\n    return 0\n",
     4, 13, ("unknown tracepoint 'syscalls:sys_enter_nosuch'", "did you mean",
             "pybpf list 'tracepoint:syscalls:*'")),
    ("missing-tracepoint-second-decorator", "tracefs",
     "@tracepoint('syscalls:sys_enter_getpid')\n@tracepoint('syscalls:sys_enter_getppdi')\n"
     "def f(args):\n    return 0\n",
     5, 13, ("unknown tracepoint 'syscalls:sys_enter_getppdi'",
             "syscalls:sys_enter_getppid")),
    ("missing-raw-tracepoint", "tracefs",
     "@raw_tracepoint('sched_swich')\ndef f(ctx):\n    return 0\n",
     4, 17, ("unknown raw tracepoint 'sched_swich'", "did you mean sched_switch")),
    ("missing-fentry-function", "btf", "@fentry('do_unlinkatt')\ndef f(ctx):\n    return 0\n",
     4, 9, ("unknown kernel function 'do_unlinkatt'", "did you mean do_unlinkat")),
    ("missing-kprobe-function", "kallsyms",
     "@kprobe('do_unlinkatt')\ndef f(ctx):\n    return 0\n",
     4, 9, ("unknown kernel function 'do_unlinkatt'", "did you mean do_unlinkat")),
    # unknown fields and members: the closest names and how to list them all
    ("tracepoint-field", "tracefs",
     "@tracepoint('syscalls:sys_enter_openat')\ndef f(args):\n    x = args.filenme\n"
     "    return 0\n",
     6, 9, ("has no field 'filenme'", "did you mean filename?",
            "pybpf list -v 'tracepoint:syscalls:sys_enter_openat'")),
    ("kernel-member", "btf",
     "@tracepoint('syscalls:sys_enter_getpid')\ndef f(args):\n"
     "    return current_task().real_parnt.tgid\n",
     6, 12, ("struct task_struct has no member 'real_parnt'", "did you mean real_parent",
             "pybpf btf dump 'struct task_struct'")),
    ("struct-field", "tracefs",
     "class E(Struct):\n    pid: u32\n\n@tracepoint('syscalls:sys_enter_getpid')\n"
     "def f(args):\n    e = E()\n    e.pdi = 1\n    return 0\n",
     10, 5, ("E has no field 'pdi'", "did you mean pid?", "fields: pid")),
    # what worked before and still does
    ("float-in-program", "tracefs",
     "@tracepoint('syscalls:sys_enter_getpid')\ndef f(args):\n    return 1.5\n",
     6, 12, ("floating point",)),
    ("ok-tracepoint", "tracefs", "counts = HashMap(u32, u64)\n\n"
     "@tracepoint('syscalls:sys_enter_getpid')\ndef f(args):\n    counts[pid()] += 1\n"
     "    return 0\n", None, None, ()),
    ("ok-struct", "tracefs", "class E(Struct):\n    pid: u32\n    comm: char[16]\n\n"
     "events = RingBuf(E)\n\n@tracepoint('syscalls:sys_enter_getpid')\ndef f(args):\n"
     "    e = E()\n    e.pid = pid()\n    e.comm = comm()\n    events.output(e)\n"
     "    return 0\n", None, None, ()),
]

IDS = [c[0] for c in CASES]


def _case(case: Tuple, tmp_path: Path) -> Tuple[Path, Optional[int], Optional[int], Tuple]:
    name, need, body, line, col, words = case
    reason = NEEDS[need]()
    if reason:
        pytest.skip(reason)
    path = tmp_path / f"{name.replace('-', '_')}.py"
    path.write_text(HEAD + body + MAIN)
    return path, line, col, words


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_compile_command(case: Tuple, tmp_path: Path) -> None:
    path, line, col, words = _case(case, tmp_path)
    out = run(["compile", str(path)])
    if line is None:
        assert out.returncode == 0, out.stderr
        assert "instructions" in out.stdout and not out.stderr
        return
    assert_one_line_error(out, f"pybpf compile: {path}:{line}:{col}: error: ", *words)
    assert "(hint: " in out.stderr


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_run_command(case: Tuple, tmp_path: Path) -> None:
    path, line, col, words = _case(case, tmp_path)
    if line is None and BPF_UNAVAILABLE:
        pytest.skip(BPF_UNAVAILABLE)
    out = run(["run", str(path)])
    if line is None:
        assert out.returncode == 0 and not out.stderr, out.stderr
        return
    assert_one_line_error(out, f"pybpf run: {path}:{line}:{col}: error: ", *words)
    assert "(hint: " in out.stderr


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_api(case: Tuple, tmp_path: Path) -> None:
    from pybpf.dsl import CompileError, compile_module
    path, line, col, words = _case(case, tmp_path)
    if line is None:
        spec = compile_module(str(path))
        assert list(spec.programs) == ["f"] and len(spec.programs["f"].instructions) > 2
        return
    with pytest.raises(CompileError) as info:
        compile_module(str(path))
    err = info.value
    text = str(err)
    assert text.startswith(f"{path}:{line}:{col}: error: "), text
    first, *rest = text.splitlines()
    assert rest and rest[-1].startswith("  hint: "), text       # source line, then hint
    for word in words:
        assert word.lower() in text.lower(), (word, text)
    assert "\n" not in err.headline and err.headline.startswith(first)
    assert (err.loc.file, err.loc.line, err.loc.column) == (str(path), line, col)


def test_error_in_main_function_is_one_line(tmp_path: Path) -> None:
    """A compile error found when main() calls load() (not at the top level)."""
    if _tracefs():
        pytest.skip(_tracefs())
    path = tmp_path / "late.py"
    path.write_text(HEAD + "@tracepoint('syscalls:sys_enter_getpid')\ndef f(args):\n"
                    "    return args.nosuch\n\n\ndef main():\n"
                    "    with load(sys.modules[__name__]):\n        pass\n\n\n"
                    "if __name__ == '__main__':\n    main()\n")
    out = run(["run", str(path)])
    assert_one_line_error(out, f"{path}:6:12: error: ", "has no field 'nosuch'")


def test_user_bug_in_a_function_keeps_its_traceback(tmp_path: Path) -> None:
    """Only the top level is reported as one line: a bug in the user's own function
    (not pybpf's error) keeps Python's traceback, as python3 FILE would show it."""
    path = tmp_path / "bug.py"
    path.write_text("def main():\n    return {}['missing_key'] + 1\n\n\n"
                    "if __name__ == '__main__':\n    main()\n")
    out = run(["run", str(path)])
    assert out.returncode == 1
    assert "missing_key" in out.stderr


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.py"
    path.write_text(HEAD + "m = ArrayMap(u32, u8, 1)\n")
    out = run(["--debug", "compile", str(path)])
    assert out.returncode == 1
    assert "Traceback" in out.stderr and "ArrayMap.__init__() takes" in out.stderr


def test_retargeted_point_keeps_its_own_error(tmp_path: Path) -> None:
    """An attach point chosen at run time (retarget) is not in the source: its error is
    the lookup's own, not pinned on an unrelated decorator."""
    if _tracefs():
        pytest.skip(_tracefs())
    from pybpf.dsl import compile_module, retarget, tracepoint
    from pybpf.errors import UnknownNameError
    path = tmp_path / "re.py"
    path.write_text(HEAD + OK_TP)
    from pybpf.dsl import functions_in_file
    fn = functions_in_file(str(path))[0]
    retarget(fn, tracepoint("syscalls:sys_enter_nosuch"))
    with pytest.raises(UnknownNameError, match="sys_enter_nosuch"):
        compile_module([fn])
