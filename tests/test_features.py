"""pybpf.features and ``pybpf features``: agreement with bpftool, and honesty.

* every program type and map type that both ``pybpf features --json`` and ``bpftool
  feature probe kernel --json`` report gets the same answer (and so do bpftool's
  ``misc`` probes that pybpf has too);
* a probe that says "no" on a kernel at least as new as the release it declares fails
  the test, unless it is one of this machine's restrictions listed in
  :data:`MACHINE_RESTRICTIONS` (each entry's reason is checked as well).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from typing import Dict, Tuple

import pytest

from pybpf import features as F
from pybpf.syscall.bpf import MapType, ProgType, kernel_version, linux_version_code

#: "no" answers explained by this machine, not by the kernel's age: probe key ->
#: ("EPERM", why) for operations refused to root here, or ("config", CONFIG_X) for build
#: options that are not set (the test checks /proc/config.gz says so)
MACHINE_RESTRICTIONS: Dict[str, Tuple[str, str]] = {
    "prog_type.tracing": ("EPERM", "tracing programs are refused to root here"),
    "prog_type.lsm": ("EPERM", "LSM programs are refused to root here"),
    "prog_type.ext": ("EPERM", "extension programs are refused to root here"),
    "prog_type.lirc_mode2": ("config", "CONFIG_BPF_LIRC_MODE2"),
    "misc.kprobe_pmu": ("config", "CONFIG_KPROBE_EVENTS"),
    "misc.kprobe_multi": ("config", "CONFIG_FPROBE"),
    "link.kprobe_multi": ("config", "CONFIG_FPROBE"),
    "link.netkit": ("config", "CONFIG_NETKIT"),
}


from bpfenv import needs_bpf


def _pybpf(*args: str) -> str:
    run = subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.fixture(scope="module")
def ours() -> dict:
    return json.loads(_pybpf("features", "--json"))


@pytest.fixture(scope="module")
def bpftool() -> dict:
    if shutil.which("bpftool") is None:
        pytest.skip("bpftool is not installed")
    run = subprocess.run(["bpftool", "feature", "probe", "kernel", "--json"],
                         capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        pytest.skip(f"bpftool feature probe failed: {run.stderr.strip()}")
    return json.loads(run.stdout)


# -- agreement with bpftool --------------------------------------------------------------

@needs_bpf
@pytest.mark.parametrize("section", ["program_types", "map_types"])
def test_agrees_with_bpftool(ours: dict, bpftool: dict, section: str) -> None:
    theirs = bpftool[section]
    mine = ours[section]
    common = sorted(set(theirs) & set(mine))
    assert len(common) >= 25, f"too few {section} in common: {common}"
    wrong = [f"{key}: pybpf {mine[key]}, bpftool {theirs[key]}" for key in common
             if mine[key] is not theirs[key]]
    assert not wrong, "\n".join(wrong)


@needs_bpf
def test_agrees_with_bpftool_misc(ours: dict, bpftool: dict) -> None:
    theirs = bpftool.get("misc", {})
    common = sorted(set(theirs) & set(ours["misc"]))
    assert "have_bounded_loops" in common and "have_v3_isa_extension" in common
    wrong = [f"{key}: pybpf {ours['misc'][key]}, bpftool {theirs[key]}" for key in common
             if ours["misc"][key] is not theirs[key]]
    assert not wrong, "\n".join(wrong)


@needs_bpf
def test_tracing_lsm_ext_say_no_here(ours: dict) -> None:
    for name in ("tracing", "lsm", "ext"):
        detail = ours["details"][f"prog_type.{name}"]
        if detail["support"] == "no":
            assert "EPERM" in detail["reason"]
        assert ours["program_types"][f"have_{name}_prog_type"] in (False, True)


# -- honesty ---------------------------------------------------------------------------------

@needs_bpf
def test_no_probe_says_no_on_a_kernel_newer_than_its_release(ours: dict) -> None:
    running = kernel_version()[:2]
    config = F.kernel_config()
    wrong = []
    for key, detail in ours["details"].items():
        if detail["support"] != "no" or detail["since"] is None:
            continue
        since = tuple(int(x) for x in detail["since"].split("."))
        if running < since:
            continue
        excuse = MACHINE_RESTRICTIONS.get(key)
        if excuse is None:
            wrong.append(f"{key}: 'no' on Linux {running[0]}.{running[1]}, but it is "
                         f"Linux {detail['since']} ({detail['reason']})")
            continue
        kind, what = excuse
        if kind == "EPERM":
            assert "EPERM" in detail["reason"], (key, detail)
        else:
            assert config, "the kernel config is not readable to confirm " + what
            assert F.config_unset(what), f"{key}: excused by {what}, but it is set"
            assert what in detail["reason"], (key, detail)
    assert not wrong, "\n".join(wrong)


@needs_bpf
def test_machine_restrictions_are_current(ours: dict) -> None:
    """Every excuse must still be needed: a listed probe that says yes is a stale entry."""
    stale = [key for key in MACHINE_RESTRICTIONS
             if ours["details"].get(key, {}).get("support") == "yes"]
    assert not stale, f"no longer restricted here, remove from the list: {stale}"


def test_every_probe_declares_a_release() -> None:
    for feat in F.features():
        if feat.group in ("prog_type", "map_type"):
            assert feat.since is not None, feat.key
        if feat.since is not None:
            assert len(feat.since) == 2 and feat.since >= (3, 18), feat.key
    assert {f.name for f in F.features() if f.group == "prog_type"} == {
        t.name.lower() for t in ProgType if t != ProgType.UNSPEC}
    assert {f.name for f in F.features() if f.group == "map_type"} == {
        t.name.lower() for t in MapType if t != MapType.UNSPEC}


# -- three states and the cache --------------------------------------------------------------

def test_three_states_and_caching() -> None:
    calls = []
    answers = [F.Result(F.Support.UNKNOWN, "not yet"), F.Result(F.Support.YES, "now"),
               F.Result(F.Support.NO, "never")]

    def check() -> F.Result:
        calls.append(1)
        return answers[len(calls) - 1]

    feat = F.Feature("test.cache", "test", "cache", (5, 0), check)
    first = F.probe(feat)
    assert first.support is F.Support.UNKNOWN and not first and not first.conclusive
    assert F.probe(feat).support is F.Support.YES         # unknown was not cached
    assert F.probe(feat).support is F.Support.YES         # yes was
    assert len(calls) == 2
    assert str(first) == "unknown (not yet)"

    def boom() -> F.Result:
        raise OSError(5, "I/O error")

    res = F.probe(F.Feature("test.raise", "test", "raise", None, boom))
    assert res.support is F.Support.UNKNOWN and "I/O error" in res.reason


def test_linux_version_code() -> None:
    assert linux_version_code((6, 18, 44)) == 0x06122C
    assert linux_version_code((4, 19, 300)) == 0x0413FF       # patch capped at 255
    major, minor, patch = kernel_version()
    assert os.uname().release.startswith(f"{major}.{minor}")
    assert linux_version_code() == (major << 16) | (minor << 8) | min(patch, 255)


@needs_bpf
def test_helpers() -> None:
    from pybpf.asm.helpers import helper
    assert F.helper_support(ProgType.XDP, helper("map_lookup_elem").id)
    assert F.helper_support(ProgType.XDP, helper("xdp_adjust_head").id)
    no = F.helper_support(ProgType.SOCKET_FILTER, helper("xdp_adjust_head").id)
    assert no.support is F.Support.NO and "xdp_adjust_head" in no.reason
    names = {h.name for h in F.available_helpers(ProgType.KPROBE)}
    assert "get_current_pid_tgid" in names and "xdp_adjust_head" not in names


@needs_bpf
def test_links_per_attach_type(ours: dict) -> None:
    from pybpf.syscall.bpf import AttachType
    per = ours["link_attach_types"]
    assert set(per) == {t.name.lower() for t in AttachType}
    assert per["cgroup_inet_ingress"] is ours["links"]["cgroup"] is True
    assert per["xdp"] is ours["links"]["xdp"]
    assert per["trace_fentry"] is None
    assert F.link_support(AttachType.TRACE_FENTRY).support is F.Support.UNKNOWN


@needs_bpf
def test_json_shape(ours: dict) -> None:
    assert set(ours) >= {"system", "program_types", "map_types", "misc", "links",
                         "helpers", "details"}
    assert ours["system"]["kernel_version"] == "%d.%d.%d" % kernel_version()
    assert ours["system"]["linux_version_code"] == linux_version_code()
    assert ours["program_types"]["have_xdp_prog_type"] is True
    assert ours["map_types"]["have_ringbuf_map_type"] is True
    assert "bpf_map_lookup_elem" in ours["helpers"]["xdp_available_helpers"]
    for key, detail in ours["details"].items():
        assert detail["support"] in ("yes", "no", "unknown"), key
        assert detail["reason"], key


@needs_bpf
def test_text_report_and_info_alias() -> None:
    text = _pybpf("info")
    sections = [line for line in text.splitlines() if line and not line.startswith(" ")]
    assert sections[:5] == ["System", "Kernel helpers (kprobe programs)", "Kernel features",
                            "Map types", "Probe types"]
    assert "  xdp: yes" in text and "  hash: yes" in text
    assert "  Loop support: yes" in text
