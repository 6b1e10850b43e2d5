"""``pybpf trace`` options closed after the first CLI (issue 19's gaps): ``--include``,
``-B``, ``-k``/``-kk``, ``--emit-elf``, ``-d``'s disassembly, the newer constructs
behind extensions, and the semantic corpus through load. Differential against the
installed bpftrace 0.17 where it has the behaviour (the helpers of
``tests/test_cli_trace.py``), real effects otherwise."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from typing import List

import pytest

from test_cli_trace import BPFTRACE, ROOT, needs_oracle, oracle, ours, _dry

HEADER = """\
#define FOO 42
#define BAR (FOO + 1)
#include <linux/limits.h>
struct mystruct { int a; long b; char c[8]; };
enum colour { RED = 3, GREEN };
"""


def _both(args: List[str]):
    return ours(args), oracle(args)


# ---------------------------------------------------------------------------------------
# --include FILE: clang's -include, before the program's own preamble
# ---------------------------------------------------------------------------------------

@needs_oracle
@pytest.mark.parametrize("prog", [
    'BEGIN { printf("%d %d %d %d\\n", FOO, BAR, sizeof(struct mystruct), PATH_MAX); '
    'exit(); }',
    'BEGIN { $p = (struct mystruct *)0; printf("%d\\n", sizeof($p->c)); exit(); }',
    '#define FOO 7\nBEGIN { printf("%d\\n", FOO); exit(); }',
])
def test_include_file_like_bpftrace(prog: str, tmp_path) -> None:
    hdr = tmp_path / "h.h"
    hdr.write_text(HEADER)
    mine, theirs = _both(["--include", str(hdr), "-e", prog])
    assert mine == theirs
    assert mine[0] == 0 and mine[1].startswith("Attaching 1 probe...\n")


@needs_oracle
def test_include_found_in_include_dir(tmp_path) -> None:
    (tmp_path / "h.h").write_text(HEADER)
    args = ["-I", str(tmp_path), "--include", "h.h", "-e",
            'BEGIN { printf("%d\\n", BAR); exit(); }']
    mine, theirs = _both(args)
    assert mine == theirs == (0, "Attaching 1 probe...\n43\n\n\n", "")


@needs_oracle
def test_include_missing_file_like_bpftrace() -> None:
    args = ["--include", "no-such-header.h", "-e", "BEGIN { exit(); }"]
    mine, theirs = _both(args)
    assert mine == theirs == (1, "", "fatal error: 'no-such-header.h' file not found\n")


@needs_oracle
def test_include_in_dry_run(tmp_path) -> None:
    hdr = tmp_path / "h.h"
    hdr.write_text(HEADER)
    args = ["-d", "--include", str(hdr), "-e",
            'BEGIN { $p = (struct mystruct *)0; printf("%d\\n", $p->b); }']
    mine, theirs = _both(args)
    assert mine[0] == theirs[0] == 0
    assert _dry(mine[1]).split("\nDisassembly")[0] == _dry(theirs[1])


def test_include_unreadable_construct_names_its_line(tmp_path) -> None:
    hdr = tmp_path / "t.h"
    hdr.write_text("#define Q 5\ntypedef int myint;\n")
    status, out, err = ours(["--include", str(hdr), "-e", "BEGIN { exit(); }"])
    assert status == 1 and out == ""
    assert err.startswith(f"{hdr}:2:1-8: ERROR: ")
