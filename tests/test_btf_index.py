"""pybpf.btf.index: the stored offsets and name index of the running kernel's vmlinux BTF.

The oracle is the code that runs without it: a :class:`BTF` opened on the same file
with no store scans the type section and searches names (and builds the full name
index for :meth:`BTF.names`); ``bpftool btf dump`` names a few ids independently. Each
test points ``$PYBPF_CACHE_DIR`` at its own directory and reopens :func:`vmlinux`
(the per-process object is put back afterwards).
"""

from __future__ import annotations

import array
import glob
import os
import random
import re
import shutil
import stat
import subprocess
import sys
import threading
from typing import Callable, Dict, List, Optional, Tuple

import pytest

from pybpf import _cache
from pybpf.btf import BTF, Kind
from pybpf.btf import index as I
from pybpf.btf import parser as P
from pybpf.btf.builder import BTFBuilder

pytestmark = pytest.mark.skipif(not os.path.exists(P.VMLINUX_PATH),
                                reason="no /sys/kernel/btf/vmlinux")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def oracle() -> BTF:
    """vmlinux opened without a store: the scan and the searches."""
    btf = BTF.from_file(P.VMLINUX_PATH, name="vmlinux")
    assert btf._store is None                   # a file opened by name is never indexed
    return btf


@pytest.fixture
def cache(tmp_path, monkeypatch: pytest.MonkeyPatch) -> str:
    d = str(tmp_path / "cache")
    monkeypatch.setenv(_cache.CACHE_DIR_ENV, d)
    monkeypatch.delenv(_cache.NO_CACHE_ENV, raising=False)
    monkeypatch.setattr(P, "_VMLINUX", None)
    return d


def reopen(monkeypatch: pytest.MonkeyPatch) -> BTF:
    """A fresh :func:`vmlinux`, as a new process would open it."""
    monkeypatch.setattr(P, "_VMLINUX", None)
    return P.vmlinux()


def index_files(d: str) -> List[str]:
    return sorted(glob.glob(os.path.join(d, I.STEM + ".*" + I.SUFFIX)))


def tool_type_names() -> List[str]:
    """Every struct, union and enum name written in bpftrace's tools, and the words
    cast to in them (typedefs among them)."""
    found = set()
    for path in glob.glob("/usr/sbin/*.bt"):
        with open(path, errors="replace") as fh:
            text = fh.read()
        found.update(re.findall(r"\b(?:struct|union|enum)\s+([A-Za-z_]\w*)", text))
        found.update(re.findall(r"\(\s*([A-Za-z_]\w*)\s*\*?\s*\)", text))
    return sorted(found)


def sample_names(oracle: BTF, n: int = 400) -> List[str]:
    names = oracle.names()
    rng = random.Random(1234)
    picked = rng.sample(sorted(names), n)
    dupes = [k for k, v in names.items() if len(v) > 1]
    return picked + dupes[:50] + ["task_struct", "sock", "long int", "(anonymous)",
                                  "no_such_type_at_all", "task_struc", "ask_struct", "_",
                                  "\u00e9t\u00e9"]


def build_full(monkeypatch: pytest.MonkeyPatch, names: List[str]) -> BTF:
    """Open vmlinux with no file, search enough names to build and store the index."""
    vm = reopen(monkeypatch)
    for name in names:
        vm.ids(name)
    for name in ("task_struct", "sock", "sk_buff", "list_head", "file", "inode", "dentry",
                 "cred", "mm_struct", "page"):
        vm.ids(name)
    assert vm._store is not None and vm._store.names is not None
    return vm


def check_same(vm: BTF, oracle: BTF, names: List[str]) -> None:
    assert len(vm) == len(oracle) and vm._offs == oracle._offs
    for name in names:
        assert vm.ids(name) == oracle.ids(name), name
        for kind in (Kind.STRUCT, Kind.TYPEDEF, Kind.ENUM):
            assert vm.ids(name, kind) == oracle.ids(name, kind), (name, kind)


def test_same_answers_with_and_without_the_index(cache: str, oracle: BTF,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    tools = tool_type_names()
    assert len(tools) > 20 and "sock" in tools and "task_struct" in tools
    names = tools + sample_names(oracle)
    build_full(monkeypatch, tools[:20])
    (path,) = index_files(cache)
    vm = reopen(monkeypatch)                    # a later process: everything from the file
    store = vm._store
    assert store.valid and store.names is not None and store.path == path
    searches = vm._searches
    check_same(vm, oracle, names)
    assert vm._searches == searches and not vm._recent   # no search was made
    # the searches themselves (the oracle object answers from its full index after 48)
    for name in tools + sample_names(oracle, 150):
        offsets = oracle._string_offsets(name.encode())
        searched = oracle._own_ids_with_name_off(offsets) if offsets else []
        assert vm.ids(name) == searched, name
    everything = oracle.names()
    for name in random.Random(5).sample(sorted(everything), 2000):
        assert vm.ids(name) == everything[name], name
    for name in ("task_struct", "sock", "sk_buff", "list_head"):
        assert vm.type_id(name) == oracle.type_id(name)
        assert vm.find(name) == oracle.find(name)
    assert vm.names() == everything             # names() still builds its own index
    assert vm.enums_with("TCP_ESTABLISHED") == oracle.enums_with("TCP_ESTABLISHED")
    assert vm.pointer_size == oracle.pointer_size


def test_bpftool_names_the_same_ids(cache: str, oracle: BTF,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("no bpftool")
    out = subprocess.run([bpftool, "btf", "dump", "file", P.VMLINUX_PATH],
                         capture_output=True, text=True, timeout=300)
    if out.returncode:
        pytest.skip(f"bpftool failed: {out.stderr.strip()[:200]}")
    wanted = {"task_struct", "sock", "tcp_sock", "in6_addr", "bpf_kfunc", "u32", "pid_t"}
    listed: Dict[str, List[Tuple[int, str]]] = {w: [] for w in wanted}
    for m in re.finditer(r"^\[(\d+)\] (\w+) '([^']*)'", out.stdout, re.M):
        if m.group(3) in wanted:
            listed[m.group(3)].append((int(m.group(1)), m.group(2)))
    build_full(monkeypatch, tool_type_names()[:20])
    vm = reopen(monkeypatch)
    assert vm._store.names is not None
    for name, rows in listed.items():
        assert rows, name
        assert vm.ids(name) == [i for i, _ in rows], name
        assert [vm.kind(i).name for i in vm.ids(name)] == [k for _, k in rows]


def test_offsets_first_then_names_after_enough_searches(
        cache: str, oracle: BTF, monkeypatch: pytest.MonkeyPatch) -> None:
    vm = reopen(monkeypatch)                    # first open: scanned, offsets written
    assert vm._store is not None and not vm._store.valid
    (path,) = index_files(cache)
    few = ["task_struct", "sock"]
    for name in few:
        assert vm.ids(name) == oracle.ids(name)
    assert vm._store.names is None              # too few searches to pay for the names
    vm = reopen(monkeypatch)                    # offsets from the file, no names in it
    assert vm._store.valid and vm._store.names is None and vm._offs == oracle._offs
    names = tool_type_names()
    real = [n for n in names if oracle.ids(n)]
    for k, name in enumerate(real[:I.SEARCHES_BEFORE_BUILD + 3]):
        assert vm.ids(name) == oracle.ids(name), name
        # built by the process that made enough searches, and stored
        assert (vm._store.names is not None) == (k >= I.SEARCHES_BEFORE_BUILD), k
    size = os.path.getsize(path)
    vm = reopen(monkeypatch)
    assert vm._store.valid and vm._store.names is not None
    assert os.path.getsize(path) == size
    check_same(vm, oracle, names)


def test_file_is_private_and_written_atomically(cache: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    renames: List[Tuple[str, str]] = []
    real_replace = os.replace

    def spy(src: str, dst: str) -> None:
        renames.append((src, dst))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    build_full(monkeypatch, tool_type_names()[:20])
    (path,) = index_files(cache)
    assert [dst for _, dst in renames] == [path, path]      # offsets, then with names
    for src, dst in renames:
        assert os.path.dirname(src) == os.path.dirname(dst) and src.endswith(".tmp")
    st = os.stat(path)
    assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == os.geteuid()
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    assert os.listdir(cache) == [os.path.basename(path)]     # no temporary left
    assert os.path.dirname(path) == _cache.cache_dir()


def test_no_cache_writes_nothing(cache: str, oracle: BTF,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(_cache.NO_CACHE_ENV, "1")
    vm = reopen(monkeypatch)
    assert vm._store is None
    names = tool_type_names()
    for name in names:
        assert vm.ids(name) == oracle.ids(name)
    assert not os.path.exists(cache)
    # and a file already there is not read either
    monkeypatch.delenv(_cache.NO_CACHE_ENV)
    build_full(monkeypatch, names[:20])
    monkeypatch.setenv(_cache.NO_CACHE_ENV, "1")
    monkeypatch.setattr(I.Store, "load", lambda self: pytest.fail("read with NO_CACHE"))
    assert reopen(monkeypatch)._store is None


def test_import_pybpf_loads_no_index() -> None:
    code = ("import sys, pybpf, pybpf.btf, pybpf.btf.parser\n"
            "assert 'pybpf.btf.index' not in sys.modules\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, timeout=60)
    assert run.returncode == 0, run.stderr


def test_other_kernel_identity_is_not_used(cache: str, oracle: BTF,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    build_full(monkeypatch, tool_type_names()[:20])
    (path,) = index_files(cache)
    with open(path, "rb") as fh:
        before = fh.read()
    ident = _cache.kernel_identity()
    monkeypatch.setitem(_cache.MEMO, "kernel", dict(ident, version=ident["version"] + " x"))
    loads: List[str] = []
    real = _cache.read_entry
    monkeypatch.setattr(_cache, "read_entry", lambda p, s=None: loads.append(p) or real(p, s))
    vm = reopen(monkeypatch)
    assert not vm._store.valid and vm._store.names is None
    assert loads and path not in loads
    # the same file under the other identity's name: its key does not match
    shutil.copyfile(path, vm._store.path)
    vm = reopen(monkeypatch)
    assert not vm._store.valid and vm._store.names is None
    check_same(vm, oracle, tool_type_names())
    with open(path, "rb") as fh:
        assert fh.read() == before              # the first kernel's file is left alone


def _rewrite(path: str, key: str, offs: bytes, ids: Optional[bytes], types: int,
             names: Optional[int]) -> None:
    import marshal
    doc = {"format": I.FORMAT, "key": key, "types": types, "names": names}
    body = offs + (ids or b"")
    with open(path, "wb") as fh:
        fh.write(_cache.frame(I.MAGIC, I.FORMAT, marshal.dumps(doc), body))
    os.chmod(path, 0o600)


def damaged_files(path: str, key: str, offs: "array.array[int]", ids: "array.array[int]"
                  ) -> Dict[str, Callable[[], None]]:
    """name -> a function writing one bad file at ``path``."""
    with open(path, "rb") as fh:
        good = fh.read()
    n, m = len(offs), len(ids)
    out_of_range = array.array("I", ids)
    out_of_range[len(out_of_range) // 2] = 10 ** 7      # the first name every lookup reads
    intruder = array.array("I", ids)
    # among bpf_kfunc's ids (a name of many types), one of another name's
    vm = P.vmlinux()
    kfuncs = vm.ids("bpf_kfunc")
    assert len(kfuncs) > 3
    at = ids.index(kfuncs[0])
    intruder[at + 1] = vm.ids("task_struct")[0]

    def raw(data: bytes) -> Callable[[], None]:
        def write() -> None:
            with open(path, "wb") as fh:
                fh.write(data)
        return write

    flipped = bytearray(good)
    flipped[len(good) // 2] ^= 0x40
    return {
        "flipped byte": raw(bytes(flipped)),
        "truncated": raw(good[:len(good) - 4096]),
        "header only": raw(good[:40]),
        "empty": raw(b""),
        "not an entry": raw(b"\x7fELF" + bytes(200)),
        "foreign key": lambda: _rewrite(path, key + "|other", offs.tobytes(), ids.tobytes(),
                                        n, m),
        "lengths": lambda: _rewrite(path, key, offs.tobytes(), ids.tobytes(), n + 1, m),
        "last offset": lambda: _rewrite(path, key, offs[:-1].tobytes(), ids.tobytes(),
                                        n - 1, m),
        "first offset": lambda: _rewrite(path, key, (array.array("I", [4]) + offs[1:]).tobytes(),
                                         ids.tobytes(), n, m),
        "ids out of range": lambda: _rewrite(path, key, offs.tobytes(),
                                             out_of_range.tobytes(), n, m),
        "ids of another name": lambda: _rewrite(path, key, offs.tobytes(),
                                                intruder.tobytes(), n, m),
        "group writable": lambda: os.chmod(path, 0o620),
    }


def test_bad_files_are_ignored_and_replaced(cache: str, oracle: BTF,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    names = tool_type_names()
    vm = build_full(monkeypatch, names[:20])
    (path,) = index_files(cache)
    key, offs, ids = vm._store.key, vm._offs, vm._store.names.ids
    probe = ["bpf_kfunc"] + names + sample_names(oracle, 100)
    for what, damage in damaged_files(path, key, offs, ids).items():
        build_full(monkeypatch, names[:20])        # a good file again
        damage()
        vm = reopen(monkeypatch)
        store = vm._store
        loaded_bad = store.valid and store.names is not None
        check_same(vm, oracle, probe)               # never a wrong answer
        if what.startswith("ids"):
            # the offsets hold together; the names give themselves away when used
            assert loaded_bad and store.broken and store.names is None, what
            assert not os.path.exists(path), what   # removed: the next process rebuilds
        else:
            assert not store.valid, what            # ignored: scanned
            if what == "group writable":            # not trusted, not overwritten
                continue
            assert os.path.exists(path), what      # replaced (offsets, then names)
            vm = reopen(monkeypatch)
            assert vm._store.valid and vm._store.names is not None, what
            check_same(vm, oracle, names)


def test_unsafe_directory_is_neither_read_nor_written(cache: str, oracle: BTF,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    build_full(monkeypatch, tool_type_names()[:20])
    (path,) = index_files(cache)
    os.chmod(cache, 0o777)
    try:
        mtime = os.stat(path).st_mtime_ns
        vm = reopen(monkeypatch)
        assert not vm._store.valid and vm._store.unwritable
        check_same(vm, oracle, tool_type_names())
        assert vm._store.names is None              # nothing built it could not keep
        assert os.stat(path).st_mtime_ns == mtime
    finally:
        os.chmod(cache, 0o700)


def test_split_btf_on_an_indexed_vmlinux(cache: str, oracle: BTF,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    build_full(monkeypatch, tool_type_names()[:20])
    vm = reopen(monkeypatch)
    assert vm._store.names is not None

    def module(base: BTF) -> BTF:
        b = BTFBuilder(base=base)
        task = base.type_id("task_struct", "struct")
        ptr = b.add_ptr(task)
        b.add_struct("holder", 8, [("task", ptr, 0)])
        b.add_struct("sock", 4, [("pid", base.type_id("int"), 0)])
        return b.parse("mod")

    mod, ref = module(vm), module(oracle)
    assert mod._store is None
    for name in ("task_struct", "sock", "holder", "int", "list_head", "nope"):
        assert mod.ids(name) == ref.ids(name), name
        assert mod.ids(name, own=True) == ref.ids(name, own=True), name
    assert mod.names() == ref.names()
    assert mod.ids("sock")[-1] == len(vm) + 2


def test_threads_building_at_once(cache: str, oracle: BTF,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    vm = reopen(monkeypatch)
    names = tool_type_names() + sample_names(oracle, 200)
    errors: List[str] = []

    def work(seed: int) -> None:
        order = list(names)
        random.Random(seed).shuffle(order)
        for name in order:
            if vm.ids(name) != oracle.ids(name):
                errors.append(name)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and vm._store.names is not None
    assert len(index_files(cache)) == 1
