"""Offsets and sizes from pybpf.btf against an independent oracle: the C compiler.

``bpftool btf dump file /sys/kernel/btf/vmlinux format c`` writes a vmlinux.h; gcc
compiles a program over it that prints ``offsetof``/``sizeof`` for common kernel structs
and fields (nested members, members of anonymous unions, array elements) and, for
bitfields, the bit position and width it finds by setting the field in a zeroed struct.
pybpf must give the same numbers for every entry this kernel has (and at least 50
fields and 50 structs must be checked).

One known fault of the oracle is allowed for, and checked: bpftool 7.1 (libbpf 1.1)
writes enums that BTF records as 1 or 2 bytes (``__packed`` enums such as
``enum rw_hint``) as plain 4-byte enums, so gcc lays out the structs that embed them
differently from the kernel. An entry may disagree with that header only when its
struct embeds such an enum, and it must then agree with the same header in which those
enums alone are marked ``__attribute__((packed))``.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Dict, List, Tuple

import pytest

from pybpf.btf import resolve as R
from pybpf.btf.errors import BTFError


def _why_not() -> str:
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        return "no /sys/kernel/btf/vmlinux"
    for tool in ("bpftool", "gcc"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (the oracle needs bpftool and gcc)"
    return ""


pytestmark = pytest.mark.skipif(bool(_why_not()), reason=_why_not())

FIELDS: List[Tuple[str, str]] = [
    ("task_struct", "pid"), ("task_struct", "tgid"), ("task_struct", "real_parent"),
    ("task_struct", "parent"), ("task_struct", "comm"), ("task_struct", "comm[4]"),
    ("task_struct", "mm"), ("task_struct", "active_mm"), ("task_struct", "flags"),
    ("task_struct", "cred"), ("task_struct", "real_cred"), ("task_struct", "files"),
    ("task_struct", "fs"), ("task_struct", "nsproxy"), ("task_struct", "signal"),
    ("task_struct", "se.vruntime"), ("task_struct", "se.sum_exec_runtime"),
    ("task_struct", "stack"), ("task_struct", "start_time"), ("task_struct", "exit_code"),
    ("task_struct", "children"), ("task_struct", "sibling"),
    ("task_struct", "group_leader"), ("task_struct", "thread_info"),
    ("mm_struct", "pgd"), ("mm_struct", "arg_start"), ("mm_struct", "arg_end"),
    ("mm_struct", "env_start"), ("mm_struct", "exe_file"),
    ("cred", "uid"), ("cred", "gid"), ("cred", "euid"), ("cred", "cap_effective"),
    ("file", "f_path"), ("file", "f_inode"), ("file", "f_flags"), ("file", "f_mode"),
    ("file", "f_pos"), ("file", "private_data"),
    ("path", "dentry"), ("path", "mnt"),
    ("dentry", "d_name"), ("dentry", "d_parent"), ("dentry", "d_inode"),
    ("qstr", "name"), ("qstr", "len"), ("qstr", "hash"),
    ("inode", "i_mode"), ("inode", "i_ino"), ("inode", "i_sb"), ("inode", "i_size"),
    ("super_block", "s_dev"), ("super_block", "s_type"),
    ("sk_buff", "len"), ("sk_buff", "data"), ("sk_buff", "head"), ("sk_buff", "dev"),
    ("sk_buff", "protocol"), ("sk_buff", "sk"), ("sk_buff", "cb"),
    ("sock", "__sk_common"), ("sock", "sk_rcvbuf"), ("sock", "sk_sndbuf"),
    ("sock", "__sk_common.skc_daddr"),
    ("sock_common", "skc_daddr"), ("sock_common", "skc_rcv_saddr"),
    ("sock_common", "skc_dport"), ("sock_common", "skc_num"),
    ("sock_common", "skc_family"),
    ("net_device", "name"), ("net_device", "ifindex"), ("net_device", "flags"),
    ("net_device", "mtu"),
    ("iphdr", "saddr"), ("iphdr", "daddr"), ("iphdr", "protocol"), ("iphdr", "ttl"),
    ("tcphdr", "source"), ("tcphdr", "dest"), ("tcphdr", "seq"),
    ("bpf_prog", "len"), ("bpf_prog", "type"), ("bpf_prog", "aux"),
    ("bpf_map", "map_type"), ("bpf_map", "key_size"), ("bpf_map", "value_size"),
    ("bpf_map", "max_entries"),
    ("pt_regs", "di"), ("pt_regs", "si"), ("pt_regs", "dx"), ("pt_regs", "ip"),
    ("pt_regs", "sp"), ("pt_regs", "ax"),
    ("linux_binprm", "filename"), ("linux_binprm", "file"),
    ("files_struct", "fdt"), ("fdtable", "max_fds"), ("fdtable", "fd"),
    ("list_head", "next"), ("list_head", "prev"),
    ("xdp_md", "data"), ("xdp_md", "data_end"), ("__sk_buff", "len"),
    ("__sk_buff", "mark"), ("bpf_attr", "map_type"), ("bpf_attr", "prog_type"),
]

BITFIELDS: List[Tuple[str, str]] = [
    ("iphdr", "ihl"), ("iphdr", "version"), ("tcphdr", "doff"), ("tcphdr", "syn"),
    ("tcphdr", "ack"), ("tcphdr", "fin"), ("sk_buff", "pkt_type"),
    ("sk_buff", "cloned"), ("sock", "sk_userlocks"), ("inode", "i_state"),
]

SIZES: List[str] = [
    "task_struct", "mm_struct", "cred", "file", "inode", "dentry", "sk_buff", "sock",
    "sock_common", "net_device", "bpf_prog", "bpf_map", "pt_regs", "path", "qstr",
    "super_block", "list_head", "hlist_node", "iphdr", "tcphdr", "ipv6hdr", "udphdr",
    "ethhdr", "sockaddr_in", "sockaddr_in6", "xdp_md", "__sk_buff", "trace_entry",
    "linux_binprm", "files_struct", "fdtable", "nsproxy", "signal_struct",
    "vm_area_struct", "page", "kobject", "device", "module", "timer_list",
    "work_struct", "hrtimer", "rq", "cfs_rq", "sched_entity", "seq_file", "socket",
    "msghdr", "iovec", "kiocb", "bio", "gendisk", "block_device", "bpf_attr",
    "bpf_insn", "perf_event", "cgroup", "css_set", "user_namespace", "net",
]


def _kinds(btf, name: str) -> str:
    """'struct' or 'union', whichever the BTF has."""
    tid = R.resolve_type(btf, name)
    return btf.type(R.skip_modifiers(btf, tid)).kind_name


def _small_enums(btf) -> Dict[str, int]:
    """Named enums whose BTF size is not 4 bytes."""
    from pybpf.btf import Kind
    out = {}
    for kind in (Kind.ENUM, Kind.ENUM64):
        for type_id in btf.ids_of_kind(kind):
            t = btf.type(type_id)
            if t.name and t.size < 4:
                out[t.name] = t.size
    return out


def _embeds_small_enum(btf, type_id: int, small: Dict[str, int], seen=None) -> bool:
    """Whether the layout of ``type_id`` includes (by value) an enum of 1 or 2 bytes."""
    from pybpf.btf.types import Array, Composite, Enum
    seen = set() if seen is None else seen
    if type_id in seen:
        return False
    seen.add(type_id)
    t = btf.type(R.skip_modifiers(btf, type_id))
    if isinstance(t, Enum):
        return t.size < 4
    if isinstance(t, Array):
        return _embeds_small_enum(btf, t.type, small, seen)
    if isinstance(t, Composite):
        return any(_embeds_small_enum(btf, m.type, small, seen) for m in t.members)
    return False


def _run_oracle(work, header: str, body: List[str]) -> Dict[str, int]:
    lines = ['#include <stdio.h>', '#include <string.h>', f'#include "{header}"',
             "#define OFF(t, m) ((unsigned long)__builtin_offsetof(t, m))",
             "static unsigned char buf[1 << 16];",
             "static void bits(const char *label, unsigned long n) {",
             "  unsigned long first = ~0UL, count = 0;",
             "  for (unsigned long i = 0; i < n * 8; i++)",
             "    if (buf[i / 8] >> (i % 8) & 1) { if (first == ~0UL) first = i; count++; }",
             '  printf("%s %lu %lu\\n", label, first, count); }',
             "int main(void) {"] + body + ["  return 0;", "}"]
    source = work / (header + ".c")
    source.write_text("\n".join(lines) + "\n")
    exe = work / (header + ".bin")
    build = subprocess.run(["gcc", "-O0", "-w", "-o", str(exe), str(source)],
                           capture_output=True, text=True, timeout=120, cwd=work)
    assert build.returncode == 0, build.stderr[-3000:]
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True,
                         timeout=60).stdout
    answers: Dict[str, int] = {}
    for line in out.splitlines():
        parts = line.split()
        if parts[0].startswith("bits:"):
            answers[parts[0] + ".first"] = int(parts[1])
            answers[parts[0] + ".width"] = int(parts[2])
        else:
            answers[parts[0]] = int(parts[1])
    return answers


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    """(the compiler's answers over bpftool's header, the same over the header with
    small enums packed, what pybpf says, the entries whose struct embeds a small
    enum)."""
    from pybpf.btf import vmlinux
    btf = vmlinux()
    work = tmp_path_factory.mktemp("oracle")
    text = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux",
                           "format", "c"], capture_output=True, text=True, check=True,
                          timeout=120).stdout
    (work / "vmlinux.h").write_text(text)
    small = _small_enums(btf)
    packed = re.sub(r"^(enum (\w+) \{\n(?:\t.*\n)*)\};$",
                    lambda m: m.group(1) + ("} __attribute__((packed));"
                                           if m.group(2) in small else "};"),
                    text, flags=re.M)
    (work / "vmlinux_packed.h").write_text(packed)
    body: List[str] = []
    expected: List[Tuple[str, int]] = []
    affected = set()
    for struct, member in FIELDS:
        try:
            tag = f"{_kinds(btf, struct)} {struct}"
            value = R.offsetof(btf, struct, member)
        except (BTFError, KeyError, ValueError):
            continue                     # not in this kernel's BTF
        label = f"off:{struct}.{member}"
        body.append(f'  printf("{label} %lu\\n", OFF({tag}, {member}));')
        expected.append((label, value))
        if _embeds_small_enum(btf, R.resolve_type(btf, struct), small):
            affected.add(label)
    for name in SIZES:
        try:
            tag = f"{_kinds(btf, name)} {name}"
            value = R.sizeof(btf, name)
        except (BTFError, KeyError, ValueError):
            continue
        label = f"size:{name}"
        body.append(f'  printf("{label} %lu\\n", (unsigned long)sizeof({tag}));')
        expected.append((label, value))
        if _embeds_small_enum(btf, R.resolve_type(btf, name), small):
            affected.add(label)
    for struct, member in BITFIELDS:
        try:
            tag = f"{_kinds(btf, struct)} {struct}"
            step = R.field_path(btf, f"{struct}.{member}").steps[-1]
        except (BTFError, KeyError, ValueError):
            continue
        if not step.bit_size:
            continue
        label = f"bits:{struct}.{member}"
        body.append(f"  memset(buf, 0, sizeof(buf)); (({tag} *)buf)->{member} = -1;")
        body.append(f'  bits("{label}", sizeof({tag}));')
        expected.append((label + ".first", step.offset * 8 + step.bit_shift))
        expected.append((label + ".width", step.bit_size))
        if _embeds_small_enum(btf, R.resolve_type(btf, struct), small):
            affected.update((label + ".first", label + ".width"))
    answers = _run_oracle(work, "vmlinux.h", body)
    corrected = _run_oracle(work, "vmlinux_packed.h", body)
    return answers, corrected, expected, affected


def _disagreements(oracle, prefix: str):
    answers, corrected, expected, affected = oracle
    wrong = []
    for label, mine in expected:
        if not label.startswith(prefix) or answers.get(label) == mine:
            continue
        if label in affected and corrected.get(label) == mine:
            continue                     # the oracle's small-enum fault, checked
        wrong.append((label, mine, answers.get(label), corrected.get(label)))
    return wrong


def test_at_least_fifty_fields_and_structs(oracle) -> None:
    expected = oracle[2]
    assert sum(1 for label, _ in expected if label.startswith("off:")) >= 50
    assert sum(1 for label, _ in expected if label.startswith("size:")) >= 50


def test_offsets_agree_with_gcc(oracle) -> None:
    assert not _disagreements(oracle, "off:")


def test_sizes_agree_with_gcc(oracle) -> None:
    assert not _disagreements(oracle, "size:")


def test_bitfields_agree_with_gcc(oracle) -> None:
    if not any(label.startswith("bits:") for label, _ in oracle[2]):
        pytest.skip("none of the listed bitfields is in this kernel")
    assert not _disagreements(oracle, "bits:")


def test_oracle_faults_are_only_small_enums(oracle) -> None:
    """Where bpftool's own header disagrees with the BTF, it is the small-enum fault:
    report which entries it touched (for the record) and that there are few."""
    answers, _, expected, affected = oracle
    differing = {label for label, mine in expected if answers.get(label) != mine}
    assert differing <= affected
