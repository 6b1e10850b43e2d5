"""pybpf.events.histogram: the BCC and bpftrace layouts against fixed text, JSON, and the
kernel-side bucket blocks run in the kernel (XDP test runs)."""

from __future__ import annotations

import json
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from _event_progs import usable  # noqa: E402
from pybpf.asm import R0, R1, R2, R3, R4, R6, R7, R8  # noqa: E402
from pybpf.asm.builder import DW, W, Label, add, build, exit_, jgt, ldx, mov  # noqa: E402
from pybpf.events import histogram as hg  # noqa: E402

# values: 0, 1, 1, 2, 3, 5, 9, 100, 1000 x3, 70000
LOG2 = [1, 2, 2, 1, 1, 0, 0, 1, 0, 0, 3, 0, 0, 0, 0, 0, 0, 1]

BCC_LOG2 = """\
     usecs               : count     distribution
         0 -> 1          : 3        |****************************************|
         2 -> 3          : 2        |**************************              |
         4 -> 7          : 1        |*************                           |
         8 -> 15         : 1        |*************                           |
        16 -> 31         : 0        |                                        |
        32 -> 63         : 0        |                                        |
        64 -> 127        : 1        |*************                           |
       128 -> 255        : 0        |                                        |
       256 -> 511        : 0        |                                        |
       512 -> 1023       : 3        |****************************************|
      1024 -> 2047       : 0        |                                        |
      2048 -> 4095       : 0        |                                        |
      4096 -> 8191       : 0        |                                        |
      8192 -> 16383      : 0        |                                        |
     16384 -> 32767      : 0        |                                        |
     32768 -> 65535      : 0        |                                        |
     65536 -> 131071     : 1        |*************                           |
"""

BPFTRACE_LOG2 = """\
@usecs:
[0]                    1 |@@@@@@@@@@@@@@@@@                                   |
[1]                    2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@                  |
[2, 4)                 2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@                  |
[4, 8)                 1 |@@@@@@@@@@@@@@@@@                                   |
[8, 16)                1 |@@@@@@@@@@@@@@@@@                                   |
[16, 32)               0 |                                                    |
[32, 64)               0 |                                                    |
[64, 128)              1 |@@@@@@@@@@@@@@@@@                                   |
[128, 256)             0 |                                                    |
[256, 512)             0 |                                                    |
[512, 1K)              3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|
[1K, 2K)               0 |                                                    |
[2K, 4K)               0 |                                                    |
[4K, 8K)               0 |                                                    |
[8K, 16K)              0 |                                                    |
[16K, 32K)             0 |                                                    |
[32K, 64K)             0 |                                                    |
[64K, 128K)            1 |@@@@@@@@@@@@@@@@@                                   |

"""


def test_bcc_log2_layout() -> None:
    assert hg.bcc_log2(LOG2, "usecs") == BCC_LOG2
    h = hg.Log2Histogram()
    for v in [0, 1, 1, 2, 3, 5, 9, 100, 1000, 1000, 1000, 70000]:
        h.add(v)
    assert h.counts == LOG2
    assert h.bcc("usecs") == BCC_LOG2
    assert hg.bcc_log2([0] * 10) == ""


def test_bcc_log2_strip_leading_zero_and_wide_layout() -> None:
    assert hg.bcc_log2([0, 0, 0, 4, 1], "kbytes", strip_leading_zero=True) == (
        "     kbytes              : count     distribution\n"
        "         4 -> 7          : 4        |****************************************|\n"
        "         8 -> 15         : 1        |**********                              |\n")
    wide = [0] * 36
    wide[35] = 2
    wide[1] = 1
    text = hg.bcc_log2(wide, "ns").splitlines()
    assert text[0] == "               ns                            : count     distribution"
    assert text[1] == ("                   0 -> 1                    : 1        "
                       "|**********          |")
    assert text[-1] == ("         17179869184 -> 34359738367          : 2        "
                        "|********************|")
    assert len(text) == 36


def test_bcc_linear_layout() -> None:
    assert hg.bcc_linear([2, 1, 0, 4], "kbytes") == (
        "     kbytes        : count     distribution\n"
        "        0          : 2        |********************                    |\n"
        "        1          : 1        |**********                              |\n"
        "        2          : 0        |                                        |\n"
        "        3          : 4        |****************************************|\n")
    assert hg.bcc_linear([0, 0, 3], "x", strip_leading_zero=True) == (
        "     x             : count     distribution\n"
        "        2          : 3        |****************************************|\n")
    assert hg.bcc_linear([]) == ""


def test_bcc_sections() -> None:
    text = hg.bcc_sections({"sdb": [0, 0, 0, 2], "sda": [0, 1, 4]}, "usecs", "disk")
    assert text == (
        "\n"
        "disk = 'sda'\n"
        "     usecs               : count     distribution\n"
        "         0 -> 1          : 1        |**********                              |\n"
        "         2 -> 3          : 4        |****************************************|\n"
        "\n"
        "disk = 'sdb'\n"
        "     usecs               : count     distribution\n"
        "         0 -> 1          : 0        |                                        |\n"
        "         2 -> 3          : 0        |                                        |\n"
        "         4 -> 7          : 2        |****************************************|\n")
    text = hg.bcc_sections({7: [0, 0, 1]}, "usecs", "pid", section_print_fn=lambda k: f"#{k}")
    assert text.startswith("\npid = #7\n")


def test_bpftrace_log2_layout() -> None:
    assert hg.bpftrace_log2(LOG2, "usecs") == BPFTRACE_LOG2
    assert hg.Log2Histogram(LOG2).bpftrace("@usecs") == BPFTRACE_LOG2
    # leading and trailing empty slots are trimmed; keys as @name[key]
    assert hg.bpftrace_log2({"b": [0, 0, 0, 5, 0], "a": [1]}, "lat") == (
        "@lat[a]:\n"
        "[0]                    1 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "\n"
        "@lat[b]:\n"
        "[4, 8)                 5 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "\n")
    big = [0] * 65
    big[64] = 1
    assert "[8E, 16E)" in hg.bpftrace_log2(big)


def test_bpftrace_linear_layout() -> None:
    h = hg.LinearHistogram(0, 100, 25)
    for v in [1, 5, 30, 99, 150, 2000, 26]:
        h.add(v)
    assert h.counts == [0, 2, 2, 0, 1, 2]
    assert h.bpftrace("x") == (
        "@x:\n"
        "[0, 25)                2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[25, 50)               2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "[50, 75)               0 |                                                    |\n"
        "[75, 100)              1 |@@@@@@@@@@@@@@@@@@@@@@@@@@                          |\n"
        "[100, ...)             2 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|\n"
        "\n")
    low = hg.LinearHistogram(1024, 4096, 1024, [3, 1, 0, 0, 0])
    assert low.bpftrace("k").splitlines()[1:3] == [
        "(..., 1K)              3 |@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@|",
        "[1K, 2K)               1 |@@@@@@@@@@@@@@@@@                                   |"]
    assert h.bcc("x").splitlines()[1:] == [
        "        0          : 2        |****************************************|",
        "        1          : 2        |****************************************|",
        "        2          : 0        |                                        |",
        "        3          : 1        |********************                    |"]


def test_json() -> None:
    doc = json.loads(hg.Log2Histogram([1, 0, 2, 0, 7]).json("lat"))
    assert doc == {"type": "hist", "data": {"@lat": [
        {"min": 0, "max": 0, "count": 1}, {"min": 2, "max": 3, "count": 2},
        {"min": 8, "max": 15, "count": 7}]}}
    lin = json.loads(hg.LinearHistogram(10, 30, 10, [1, 0, 2, 3]).json("@v"))
    assert lin["data"]["@v"] == [{"min": None, "max": 9, "count": 1},
                                 {"min": 20, "max": 29, "count": 2},
                                 {"min": 30, "max": None, "count": 3}]
    keyed = json.loads(hg.to_json("h", {"b": hg.Log2Histogram([0, 1]),
                                        "a": hg.Log2Histogram([1])}))
    assert list(keyed["data"]["@h"]) == ["a", "b"]


def test_python_slots() -> None:
    assert [hg.log2_slot_of(v) for v in (0, 1, 2, 3, 4, 2**63, 2**64 - 1)] == \
        [0, 1, 2, 2, 3, 64, 64]
    assert [hg.linear_slot_of(v, 10, 30, 7) for v in (0, 9, 10, 16, 17, 29, 30)] == \
        [0, 0, 1, 1, 2, 3, 4]
    with pytest.raises(ValueError):
        hg.LinearHistogram(5, 5, 1)
    with pytest.raises(ValueError):
        hg.log2_slot(R1, R1, R2)


# -- the kernel-side blocks ------------------------------------------------------------------

_WHY = usable()
VALUES = [0, 1, 2, 3, 4, 7, 8, 9, 1000, 65535, 65536, 2**31, 2**32 - 1, 2**32, 2**32 + 1,
          2**48 + 5, 2**63 - 1, 2**63, 2**64 - 1, 5, 12, 29, 30, 31, 100]


@pytest.mark.skipif(bool(_WHY), reason=_WHY)
def test_log2_and_linear_slots_in_the_kernel() -> None:
    from pybpf.maps import ArrayMap
    from pybpf.program import ProgramSpec
    from pybpf.syscall.bpf import ProgType
    lo, hi, step = 10, 30, 7
    lin = hg.LinearHistogram(lo, hi, step)
    with ArrayMap(value=8, max_entries=hg.LOG2_SLOTS) as log2_map, \
            ArrayMap(value=8, max_entries=lin.nslots) as lin_map:
        code = build(
            [ldx(W, R2, R1, 0), ldx(W, R3, R1, 4), mov(R4, R2), add(R4, 8),
             jgt(R4, R3, "out"), ldx(DW, R6, R2, 0), mov(R8, R6)]
            + hg.log2_slot(R7, R6, R0) + hg.increment_slot(log2_map, R7)
            + hg.linear_slot(R7, R8, lo, hi, step) + hg.increment_slot(lin_map, R7, count=R8)
            + [Label("out"), mov(R0, 2), exit_()])
        assert sum(1 for ins in hg.log2_slot(R7, R6, R0)) == 33
        with ProgramSpec(ProgType.XDP, code, name="hist_slots").load() as prog:
            for v in VALUES:
                assert prog.test_run(v.to_bytes(8, "little") + bytes(8)).retval == 2
        log2 = hg.Log2Histogram(log2_map)
        kernel_sums = [int.from_bytes(lin_map.get(i), "little") for i in range(lin.nslots)]
    expected = hg.Log2Histogram()
    sums = [0] * lin.nslots
    for v in VALUES:
        expected.add(v)
        sums[hg.linear_slot_of(v, lo, hi, step)] += v
    assert log2.counts == expected.counts + [0] * (hg.LOG2_SLOTS - len(expected.counts))
    assert kernel_sums == [s & (2**64 - 1) for s in sums]
