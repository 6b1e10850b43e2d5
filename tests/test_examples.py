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


@needs_bpf
def test_readme_tool_traces_opens(tmp_path: Path) -> None:
    """The tool in the README's "Writing a tool in Python" section, run as a script."""
    import signal
    import time
    text = (ROOT / "README.md").read_text()
    start = text.index("```python\nfrom pybpf.dsl import")
    code = text[start + len("```python\n"):text.index("```", start + 10)]
    script = tmp_path / "tool.py"
    script.write_text(code)
    marker = tmp_path / "readme-marker"
    marker.write_text("x")
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen = ""
        for _ in range(100):                # until the programs are attached
            open(marker).close()
            time.sleep(0.05)
            if proc.poll() is not None:
                break
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        seen = out
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    mine = [line for line in seen.splitlines() if line.endswith(str(marker))]
    assert mine, seen[-2000:] + err
    pid, comm, ret = mine[0].split()[:3]
    assert int(pid) == os.getpid() and int(ret) >= 0
