"""pybpf.elf: symbol tables against pyelftools (the slow oracle), .gnu.hash against the
table scan, address -> file offset, ld.so.cache against ``ldconfig -p``,
/proc/PID/maps, library name resolution with close matches."""

from __future__ import annotations

import os
import random
import shutil
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from pybpf.elf import libs
from pybpf.elf.symbols import ElfError, ElfFile, UnknownSymbolError, gnu_hash

LIBC = libs.resolve_library("c")


def _oracle(path: str, table: str) -> dict:
    out: dict = {}
    with open(path, "rb") as fh:
        elf = ELFFile(fh)
        sec = elf.get_section_by_name(table)
        if sec is None:
            return out
        for sym in sec.iter_symbols():
            if sym.name and sym["st_shndx"] != "SHN_UNDEF":
                out.setdefault(sym.name, set()).add(sym["st_value"])
    return out


@pytest.mark.parametrize("path", [LIBC, os.path.realpath(shutil.which("bash") or "/bin/sh"),
                                  os.path.realpath("/usr/bin/python3")])
def test_symbols_match_pyelftools(path):
    expect = {}
    for table in (".symtab", ".dynsym"):
        for name, values in _oracle(path, table).items():
            expect.setdefault(name, set()).update(values)
    names = sorted(expect)
    random.Random(1).shuffle(names)
    with ElfFile(path) as elf:
        for name in names[:400]:
            found = {s.value for s in elf.find_symbols(name)}
            assert found == expect[name], name
        assert set(elf.names()) >= set(expect)


def test_gnu_hash_agrees_with_scan():
    with ElfFile(LIBC) as elf:
        assert elf._gnu_hash_lookup(b"malloc") == elf._table(".dynsym").find(b"malloc")
        assert elf._gnu_hash_lookup(b"pybpf_nothing") == []
    assert gnu_hash(b"") == 5381 and gnu_hash(b"printf") == 0x156B2BB8


def test_file_offsets_match_segments():
    with open(LIBC, "rb") as fh:
        oracle = ELFFile(fh)
        loads = [s for s in oracle.iter_segments() if s["p_type"] == "PT_LOAD"]
        with ElfFile(LIBC) as elf:
            value = elf.symbol("malloc").value
            seg = next(s for s in loads if s["p_vaddr"] <= value < s["p_vaddr"] + s["p_filesz"])
            assert elf.file_offset(value) == value - seg["p_vaddr"] + seg["p_offset"]
            assert elf.symbol_offset("malloc+4") == elf.file_offset(value) + 4
            with pytest.raises(ElfError):
                elf.file_offset(1 << 60)


def test_unknown_symbol_lists_close_matches():
    with ElfFile(LIBC) as elf:
        with pytest.raises(UnknownSymbolError, match="malloc") as info:
            elf.symbol("maloc")
        assert "malloc" in info.value.matches


def test_not_elf(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"#!/bin/sh\n" + b"\0" * 100)
    with pytest.raises(ElfError):
        ElfFile(str(p))


@pytest.mark.skipif(shutil.which("ldconfig") is None and not os.path.exists("/sbin/ldconfig"),
                    reason="no ldconfig")
def test_ld_so_cache_matches_ldconfig():
    ldconfig = shutil.which("ldconfig") or "/sbin/ldconfig"
    out = subprocess.run([ldconfig, "-p"], capture_output=True, text=True).stdout
    want = {}
    for line in out.splitlines()[1:]:
        name, _, path = line.strip().partition(" => ")
        soname, _, flags = name.partition(" (")
        if "x86-64" in flags or os.uname().machine != "x86_64":
            want.setdefault(soname, set()).add(path)
    cache = libs.ld_so_cache()
    for soname, paths in want.items():
        assert set(cache.get(soname, ())) >= paths, soname


def test_resolve_library_names():
    assert libs.resolve_library("c") == libs.resolve_library("libc") == \
        libs.resolve_library("libc.so.6")
    assert os.path.basename(libs.resolve_library("c")).startswith("libc.so")
    mapped = libs.resolve_library("c", pid=os.getpid())
    assert os.path.basename(mapped).startswith("libc") and os.path.exists(mapped)
    with pytest.raises(LookupError):
        libs.resolve_library("pybpf_no_such_lib")
    with pytest.raises(LookupError, match="libm"):
        libs.resolve_library("libmm")


def test_proc_maps():
    entries = libs.proc_maps(os.getpid())
    assert any(e.path.endswith(os.path.basename(LIBC)) and "x" in e.perms for e in entries)
    with pytest.raises(ProcessLookupError):
        libs.proc_maps(2 ** 22 + 12345)


def _oracle_functions(path: str) -> set:
    out = set()
    with open(path, "rb") as fh:
        elf = ELFFile(fh)
        for table in (".symtab", ".dynsym"):
            sec = elf.get_section_by_name(table)
            if sec is None or not hasattr(sec, "iter_symbols"):
                continue
            for sym in sec.iter_symbols():
                if (sym.name and sym["st_shndx"] != "SHN_UNDEF"
                        and sym["st_info"]["type"] in ("STT_FUNC", "STT_LOOS")):
                    out.add(sym.name.split("@", 1)[0])
    return out


@pytest.mark.parametrize("path", [LIBC, os.path.realpath(shutil.which("bash") or "/bin/sh")])
def test_function_names_match_pyelftools(path):
    from pybpf.elf.functions import function_names
    # STT_GNU_IFUNC is 10, which pyelftools names STT_LOOS
    assert function_names(path, debug_file=False) == _oracle_functions(path)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no gcc")
def test_function_names_cache_follows_a_rebuilt_file(tmp_path):
    """The per-process cache answers again only for the same file: a library rebuilt at
    the same path (new inode, size, mtime) is read again."""
    from pybpf.elf.functions import function_name_set, function_names
    lib = tmp_path / "libpybpfcache.so"

    def build(name: str) -> None:
        src = tmp_path / "lib.c"
        src.write_text(f"int {name}(int x) {{ return x + 1; }}\n")
        out = tmp_path / "new.so"
        subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(out), str(src)], check=True)
        os.replace(out, lib)                            # a new inode at the same path

    build("pybpf_first_fn")
    first = function_names(str(lib))
    assert "pybpf_first_fn" in first and first == _oracle_functions(str(lib))
    assert function_name_set(str(lib)) is function_name_set(str(lib))   # cached
    build("pybpf_second_fn")
    second = function_names(str(lib))
    assert "pybpf_second_fn" in second and "pybpf_first_fn" not in second
    assert second == _oracle_functions(str(lib))
    first.add("changed by the caller")                  # a caller's set is its own
    assert "changed by the caller" not in function_names(str(lib))
