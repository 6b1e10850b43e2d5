"""pybpf.syscall.perf without a kernel feature beyond software events: ioctl numbers,
PMU format parsing, attribute builders, errors."""

from __future__ import annotations

import ctypes
import os
import platform

import pytest

from pybpf.syscall import perf
from pybpf.syscall.errors import BPFError, NotSupportedError


def test_sizes_and_ioctl_numbers():
    assert ctypes.sizeof(perf.PerfEventAttr) == perf.PERF_ATTR_SIZE == 136
    if platform.machine() in ("x86_64", "aarch64"):
        assert perf.IOC_ENABLE == 0x2400 and perf.IOC_DISABLE == 0x2401
        assert perf.IOC_SET_BPF == 0x40042408
        assert perf.IOC_QUERY_BPF == 0xC008240A
        assert perf.IOC_ID == 0x80082407


def test_builders():
    a = perf.software_attr(perf.SwId.CPU_CLOCK, sample_freq=49)
    assert (a.type, a.config, a.freq, a.sample_freq, a.disabled) == (1, 0, 1, 49, 1)
    t = perf.tracepoint_attr(123)
    assert (t.type, t.config, t.sample_period, t.sample_type) == (2, 123, 1, 1 << 10)
    p = perf.probe_attr(8, name=b"/bin/true", addr_or_offset=0x40, config=1)
    assert ctypes.string_at(p.config1) == b"/bin/true" and p.probe_offset == 0x40
    with pytest.raises(ValueError):
        perf.software_attr(sample_freq=1, sample_period=1)
    with pytest.raises(ValueError):
        perf.software_attr(sample_freq=0)


def test_pmu_format(tmp_path, monkeypatch):
    fmt = tmp_path / "uprobe" / "format"
    fmt.mkdir(parents=True)
    (fmt / "retprobe").write_text("config:0\n")
    (fmt / "ref_ctr_offset").write_text("config:32-63\n")
    (tmp_path / "uprobe" / "type").write_text("8\n")
    monkeypatch.setattr(perf, "PMU_ROOT", str(tmp_path))
    assert perf.pmu_type("uprobe") == 8 and perf.pmu_type("nope") is None
    assert perf.pmu_format("uprobe", "retprobe") == ("config", 0, 1)
    assert perf.pmu_format("uprobe", "ref_ctr_offset") == ("config", 32, 32)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_software_counter_and_errors():
    with perf.perf_event_open(perf.software_attr(perf.SwId.TASK_CLOCK), pid=0,
                              cpu=-1) as fd:
        perf.enable(fd)
        sum(range(100000))
        perf.disable(fd)
        assert int.from_bytes(os.read(fd.fileno(), 8), "little") > 0
        assert perf.event_id(fd) > 0
        perf.reset(fd)
    bad = perf.PerfEventAttr(type=perf.PerfType.SOFTWARE, config=9999)
    with pytest.raises(NotSupportedError):
        perf.perf_event_open(bad)
    with pytest.raises(BPFError) as info:
        perf.perf_event_open(perf.tracepoint_attr(0x7FFFFFF0))
    assert info.value.command == "perf_event_open"
    try:
        perf.perf_event_open(perf.hardware_attr()).close()
    except NotSupportedError as exc:
        assert "hardware" in str(exc)
