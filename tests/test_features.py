"""pybpf.features and ``pybpf features``: agreement with bpftool, and honesty.

* every program type and map type that both ``pybpf features --json`` and ``bpftool
  feature probe kernel --json`` report gets the same answer (and so do bpftool's
  ``misc`` probes that pybpf has too);
* a probe that says "no" on a kernel at least as new as the release it declares fails
  the test, unless the kernel was built without it (:data:`MACHINE_CONFIG`, each checked
  against /proc/config.gz);
* "restricted" (the kernel has it, this machine's policy refuses it) is the answer only
  to EPERM with every BPF capability held: with capabilities dropped the same probes
  answer "unknown", never "no".
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

#: "no" answers explained by this machine's kernel build, not by the kernel's age: probe
#: key -> the CONFIG_X option that is not set (the test checks /proc/config.gz says so).
#: Operations the kernel has but this machine refuses (EPERM) answer "restricted" and
#: need no entry here.
MACHINE_CONFIG: Dict[str, str] = {
    "prog_type.lirc_mode2": "CONFIG_BPF_LIRC_MODE2",
    "misc.kprobe_pmu": "CONFIG_KPROBE_EVENTS",
    "misc.kprobe_multi": "CONFIG_FPROBE",
    "link.kprobe_multi": "CONFIG_FPROBE",
    "link.netkit": "CONFIG_NETKIT",
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
def test_restricted_means_eperm_with_every_capability(ours: dict) -> None:
    """Whatever this machine refuses by policy (here: tracing, LSM and extension
    programs; on some builds arena maps) says so, and reads as unavailable for bpftool's
    keys; the report shows it as "not permitted here", not as "no"."""
    from pybpf.syscall.errors import missing_capabilities
    restricted = {k: d for k, d in ours["details"].items() if d["support"] == "restricted"}
    for key, detail in restricted.items():
        assert "EPERM" in detail["reason"] and "security policy" in detail["reason"], key
    if restricted:
        assert not missing_capabilities()
    for name in ("tracing", "lsm", "ext"):
        assert ours["details"][f"prog_type.{name}"]["support"] in ("yes", "restricted")
        assert ours["program_types"][f"have_{name}_prog_type"] is (
            ours["details"][f"prog_type.{name}"]["support"] == "yes")
    text = _pybpf("info")
    for key in restricted:
        group, name = key.split(".", 1)
        if group in ("prog_type", "map_type"):
            assert f"  {name}: not permitted here (EPERM" in text, key


@needs_bpf
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs setpriv (util-linux) "
                    "to drop capabilities")
def test_without_capabilities_answers_are_unknown_not_no(ours: dict) -> None:
    """Root with CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN and CAP_SYS_ADMIN dropped: what the
    kernel refuses for want of privilege is "unknown" with the capability named, never
    "no" and never "restricted"."""
    drop = "-bpf,-perfmon,-net_admin,-sys_admin"
    run = subprocess.run(["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}",
                          sys.executable, "-m", "pybpf", "features", "--json"],
                         capture_output=True, text=True, timeout=120,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert run.returncode == 0, run.stderr
    dropped = json.loads(run.stdout)["details"]
    for key in ("prog_type.xdp", "prog_type.kprobe", "map_type.hash", "map_type.arena",
                "prog_type.tracing"):
        assert dropped[key]["support"] == "unknown", (key, dropped[key])
        assert "CAP_BPF" in dropped[key]["reason"], (key, dropped[key])
    wrong = [k for k, d in dropped.items()
             if d["support"] in ("no", "restricted") and ours["details"][k]["support"]
             in ("yes", "restricted") and k.split(".")[0] in ("prog_type", "map_type")]
    assert not wrong, wrong


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
        what = MACHINE_CONFIG.get(key)
        if what is None:
            wrong.append(f"{key}: 'no' on Linux {running[0]}.{running[1]}, but it is "
                         f"Linux {detail['since']} ({detail['reason']})")
            continue
        assert config, "the kernel config is not readable to confirm " + what
        assert F.config_unset(what), f"{key}: excused by {what}, but it is set"
        assert what in detail["reason"], (key, detail)
    assert not wrong, "\n".join(wrong)


@needs_bpf
def test_machine_restrictions_are_current(ours: dict) -> None:
    """Every excuse must still be needed: a listed probe that says yes is a stale entry."""
    stale = [key for key in MACHINE_CONFIG
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

def test_answers_and_caching() -> None:
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

    refused = F.Result(F.Support.RESTRICTED, "EPERM")
    assert not refused and refused.conclusive and refused.restricted
    assert str(refused) == "restricted (EPERM)"
    seen = []
    feat = F.Feature("test.restricted", "test", "r", (5, 0),
                     lambda: seen.append(1) or refused)
    assert F.probe(feat) is refused and F.probe(feat) is refused and seen == [1]


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
        assert detail["support"] in ("yes", "no", "restricted", "unknown"), key
        assert detail["reason"], key


@needs_bpf
def test_text_report_and_info_alias() -> None:
    text = _pybpf("info")
    sections = [line for line in text.splitlines() if line and not line.startswith(" ")]
    assert sections[:5] == ["System", "Kernel helpers (kprobe programs)", "Kernel features",
                            "Map types", "Probe types"]
    assert "  xdp: yes" in text and "  hash: yes" in text
    assert "  Loop support: yes" in text
