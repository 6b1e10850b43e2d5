"""The examples in examples/ run as documented and give the right answers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from bpfenv import needs_bpf

ROOT = Path(__file__).resolve().parent.parent


@needs_bpf
def test_count_opens_counts_this_process() -> None:
    proc = subprocess.Popen([sys.executable, "examples/count_opens.py", "1.5"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()                  # printed once attached
        assert first.startswith("Counting openat()"), first + proc.stderr.read()
        for _ in range(300):
            os.close(os.open("/dev/null", os.O_RDONLY))
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    rows = {int(line.split()[0]): int(line.split()[1]) for line in out.splitlines()[1:]}
    assert rows.get(os.getpid(), 0) >= 300, out


def test_answer_s_on_the_interpreter() -> None:
    run = subprocess.run([sys.executable, "-m", "pybpf", "vm", "run", "examples/answer.s",
                          "--mem", "2a 00 00 00"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "0x2a", run.stderr
