"""programs/profile.py: a C child spinning in known functions (built with frame pointers)
is sampled; its function names must show up in the stacks, in BCC's layout and folded;
compared with bpftrace's leaf functions."""

import re
import shutil
import subprocess
import sys
import time

import pytest

from bpfenv import needs_bpf
from progrun import ROOT, env, programs_loaded

pytestmark = [needs_bpf, pytest.mark.skipif(shutil.which("gcc") is None,
                                            reason="needs gcc to build the workload")]

SPIN = r"""
#include <stdio.h>
volatile unsigned long sink;
__attribute__((noinline)) void spin_inner_leaf(void)
{ for (int i = 0; i < 100000; i++) sink += i; }
__attribute__((noinline)) void spin_outer_caller(void) { for (;;) spin_inner_leaf(); }
int main(void) { printf("ready\n"); fflush(stdout); spin_outer_caller(); return 0; }
"""


@pytest.fixture
def spinner(tmp_path):
    src = tmp_path / "spin.c"
    src.write_text(SPIN)
    exe = tmp_path / "spinner"
    subprocess.run(["gcc", "-O0", "-fno-omit-frame-pointer", "-o", str(exe), str(src)],
                   check=True)
    child = subprocess.Popen([str(exe)], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "ready"
    yield child
    child.kill()
    child.wait()


def _profile(*args, timed=None):
    start = time.monotonic()
    r = subprocess.run([sys.executable, "programs/profile.py", *map(str, args)], cwd=ROOT,
                       env=env(), capture_output=True, text=True, timeout=60)
    if timed is not None:
        timed.append(time.monotonic() - start)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_profile_stacks_name_the_functions(spinner):
    elapsed = []
    out = _profile("-F", "99", "-p", spinner.pid, "1", timed=elapsed)
    assert out.startswith(f"Sampling at 99 Hertz of PID {spinner.pid} by user + kernel "
                          "stack for 1 secs.\n")
    body = out.split("\n", 1)[1]
    blocks = [b for b in body.split("\n\n") if f"spinner ({spinner.pid})" in b]
    assert blocks, out
    total = 0
    for b in blocks:
        lines = b.strip("\n").splitlines()
        total += int(lines[-1])
        assert lines[-2].split() == ["-", "spinner", f"({spinner.pid})"]
    # ~99 samples a second while the program is attached: from the load through the
    # 1 s run to the read of the counts (as BCC's profile), never longer than the tool ran
    assert 50 <= total <= 99 * elapsed[0] + 2, (elapsed, out)
    top = max(blocks, key=lambda b: int(b.split()[-1]))
    frames = [line.strip() for line in top.splitlines()[:-2]]
    assert frames[:3] == ["spin_inner_leaf", "spin_outer_caller", "main"], out
    assert not programs_loaded(["do_sample"])


def test_profile_folded_user_only(spinner):
    out = _profile("-f", "-U", "-p", spinner.pid, "1")
    lines = out.splitlines()
    assert lines and all(re.match(r"spinner;.* \d+$", line) for line in lines), out
    assert any(line.startswith("spinner;") and ";main;spin_outer_caller;spin_inner_leaf "
               in line for line in lines), out


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")
def test_profile_leaf_matches_bpftrace(spinner):
    bt = subprocess.Popen(["bpftrace", "-e", f"profile:hz:99 /pid == {spinner.pid}/ "
                           "{ @[usym(reg(\"ip\"))] = count(); }"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while "Attaching" not in (bt.stdout.readline() or "") and time.monotonic() < deadline:
        pass
    out = _profile("-f", "-U", "-F", "99", "-p", spinner.pid, "1")
    bt.send_signal(2)
    bt_out, _ = bt.communicate(timeout=30)
    theirs = {m.group(1) for m in re.finditer(r"@\[(\w+)\]: (\d+)", bt_out)
              if int(m.group(2)) >= 10}
    ours = {}
    for line in out.splitlines():
        stack, count = line.rsplit(" ", 1)
        leaf = stack.split(";")[-1]
        ours[leaf] = ours.get(leaf, 0) + int(count)
    assert {k for k, v in ours.items() if v >= 10} == theirs == {"spin_inner_leaf"}
