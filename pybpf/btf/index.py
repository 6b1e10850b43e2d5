"""A persistent index of the running kernel's vmlinux BTF, kept between processes.

Opening ``/sys/kernel/btf/vmlinux`` costs a cold process two things that the blob
itself does not change between runs: the scan that records where each of its ~126k type
records starts (~50 ms, :meth:`pybpf.btf.parser.BTF._scan`) and, for each name looked
up, a search of the string section and then of the type names (~2 ms each; a bpftrace
tool that reads kernel structs does 30-50). This module keeps both answers in one file
of pybpf's cache directory (:func:`pybpf._cache.cache_dir`, off with
``$PYBPF_NO_CACHE`` like the other caches there), for the running kernel's vmlinux BTF
only: never module BTF (it changes as modules load) nor a file a user names.

The file (``btf-vmlinux.KEY.idx``, written atomically, mode 0600, in a directory of
this user nobody else may write, framed and hashed by :func:`pybpf._cache.frame`)
holds, as native 32-bit words:

* the word offset of every type record, in id order (what the scan makes);
* optionally the name index: the id of every named type, sorted by name and then id
  (a stable sort). A lookup is two :func:`bisect.bisect_left`-style bisections over
  ``range(len(ids))`` keyed by the name each id's record gives (~30 us, against ~2 ms
  for a search), so loading it costs reading and hashing ~0.8 MB (a few ms), not
  building a dict of 70k names (a marshal'd one takes ~50 ms to load). Equal names
  sit side by side in id order: one name's ids come out as the searches and
  :meth:`~pybpf.btf.parser.BTF.names` give them.

It is trusted only for the same bytes: the key is :func:`pybpf._cache.kernel_identity`
(``uname`` release, version and machine, the BTF's size and a hash of its first and
last 4 KiB), the size and header of the blob opened, the byte order and the format.
A file whose frame, hash, key or lengths do not match, whose first offset is not 0 or
whose last record does not end the type section exactly is ignored (the scan runs)
and replaced. Every answer is checked on the way out as well: each id it gives must be
in range and a record of that name, or the index is dropped for the rest of the
process (the searches answer) and the file removed. The hash guards against damage,
the key against another kernel's file; against deliberate edits the file is as safe
as the other caches' entries (this user's, in a directory only this user may write).

When it is written. Building the name index costs ~75 ms (sorting 70k names: as much
as ~35 searches), more than a process that names a few structs spends, so it is not
built up front. The offsets are written as soon as the scan has made them (~3 ms).
The name index is built in the first process that makes
:data:`SEARCHES_BEFORE_BUILD` name searches on vmlinux while no stored one exists
(a bpftrace tool's compile makes 30-50; a Python program naming a struct or two makes
fewer and never pays for it), and written beside the offsets; the rest of that
process's lookups are answered from it, so it pays about the build less the searches
it no longer makes (tcplife.bt: about even), once per kernel. Later processes load
both. Nothing is built when the cache directory is not ours to write (it would be
lost at every start).
"""

from __future__ import annotations

import array
import bisect
import marshal
import os
import sys
import threading
from typing import Any, List, Optional

from .. import _cache
from .format import FIXED_WORDS, WORDS_PER_ITEM

__all__ = ["Store", "NameIndex", "open_store", "build_names", "SEARCHES_BEFORE_BUILD",
           "STEM", "SUFFIX", "FORMAT"]

#: the entry's magic and layout version
MAGIC = b"PYBPFBX\0"
FORMAT = 1
#: file names: ``STEM.KEY<SUFFIX>`` in the cache directory; a few kernels' are kept
STEM = "btf-vmlinux"
SUFFIX = ".idx"
KEEP = 3
#: name searches on vmlinux after which a process builds and stores the name index
SEARCHES_BEFORE_BUILD = 8


def _words(raw: bytes) -> "array.array[int]":
    a = array.array("I")
    a.frombytes(raw)
    return a


class NameIndex:
    """The ids of a blob's named types sorted by name (then id: the sort is stable):
    :meth:`lookup` finds one name's ids by bisection, comparing the names the blob's
    own records give (so nothing but the ids is stored)."""

    __slots__ = ("ids",)

    def __init__(self, ids: "array.array[int]") -> None:
        self.ids = ids

    def lookup(self, btf: Any, raw: bytes) -> List[int]:
        """The ids of ``btf``'s types named ``raw`` (bytes), in id order. An id out of
        ``btf``'s range raises IndexError."""
        ids, words, offs, first = self.ids, btf._words, btf._offs, btf.first_id
        raw_string = btf._raw_string

        def name(i: int) -> bytes:
            t = ids[i] - first
            if t < 0:
                raise IndexError(t)
            return raw_string(words[offs[t]])

        pairs = range(len(ids))
        lo = bisect.bisect_left(pairs, raw, key=name)
        if lo == len(ids) or name(lo) != raw:
            return []
        hi = bisect.bisect_right(pairs, raw, lo, key=name)
        return ids[lo:hi].tolist()


def build_names(btf: Any) -> NameIndex:
    """The name index of ``btf``'s own named types (a blob that is not split: its names
    are all in its own string section), made with C loops (``map``, ``sorted``)."""
    w, offs, first = btf._words, btf._offs, btf.first_id
    column = array.array("I", map(w.__getitem__, offs))   # name offset of each type
    named = [i for i, off in enumerate(column) if off]
    strings = bytes(btf._data[btf._str_start:btf._str_end])
    name_offs = list(map(column.__getitem__, named))
    ends = list(map(strings.find, [b"\0"] * len(name_offs), name_offs))
    if -1 in ends:            # a name running to the end of the section (never in vmlinux)
        ends = [e if e >= 0 else len(strings) for e in ends]
    names = list(map(strings.__getitem__, map(slice, name_offs, ends)))
    order = sorted(range(len(named)), key=names.__getitem__)    # stable: ids ascend
    return NameIndex(array.array("I", [first + named[i] for i in order]))


class Store:
    """The stored index of one vmlinux blob: where it is kept (``path``), the ``key``
    it must carry, and what was loaded from it (``offsets``, ``names``; None when it
    had none or did not hold together)."""

    def __init__(self, directory: str, key: str) -> None:
        self.directory = directory
        self.key = key
        self.path = os.path.join(
            directory, f"{STEM}.{_cache.hash256(key.encode()).hexdigest()[:40]}{SUFFIX}")
        self.offsets: Optional["array.array[int]"] = None
        self.names: Optional[NameIndex] = None
        self.valid = False            # a file holding together was read (offsets known)
        self.broken = False           # an answer did not check out: no more use
        self.unwritable = False
        self._lock = threading.Lock()

    # -- reading ---------------------------------------------------------------------------
    def load(self) -> None:
        """Read the file when it is there, ours and holds together (else leave
        ``offsets`` and ``names`` None)."""
        if not _cache.safe_dir(self.directory, create=False):
            return
        raw = _cache.read_entry(self.path)
        if raw is None:
            return
        opened = _cache.open_entry(raw, MAGIC, FORMAT, self.key, marshal.loads)
        if opened is None:
            return
        doc, code = opened
        n, m = doc.get("types"), doc.get("names")
        if not isinstance(n, int) or n < 0 or not (m is None or isinstance(m, int) and m >= 0):
            return
        if len(code) != 4 * (n + (m or 0)):
            return
        offsets = _words(code[:4 * n])
        names = NameIndex(_words(code[4 * n:])) if m is not None else None
        self.offsets, self.names = offsets, names

    def offsets_for(self, btf: Any) -> Optional["array.array[int]"]:
        """The loaded offsets when they fit ``btf`` (first 0, all inside the type
        section, the last record ending it exactly; the name index's ids all ``btf``'s),
        else None (and the loaded index is forgotten)."""
        offs, names = self.offsets, self.names
        self.offsets = None
        if offs is None or not self._fits(btf, offs, names):
            self.names = None
            return None
        self.valid = True
        return offs

    @staticmethod
    def _fits(btf: Any, offs: "array.array[int]", names: Optional[NameIndex]) -> bool:
        w = btf._words
        n = len(w)
        if not offs:
            return n == 0 and (names is None or not names.ids)
        last = offs[-1]
        if offs[0] != 0 or last > n - 3:
            return False
        info = w[last + 1]
        k = (info >> 24) & 31
        if k >= len(FIXED_WORDS) or FIXED_WORDS[k] is None:
            return False
        if last + 3 + FIXED_WORDS[k] + (info & 0xFFFF) * WORDS_PER_ITEM[k] != n:
            return False
        return True

    def ids_named(self, btf: Any, raw: bytes) -> Optional[List[int]]:
        """The ids of ``btf``'s types named ``raw`` from the name index, building and
        storing it first when ``btf`` has made :data:`SEARCHES_BEFORE_BUILD` searches;
        None when the index cannot answer (the caller searches)."""
        names = self.names
        if names is None:
            if self.broken or self.unwritable or btf._searches < SEARCHES_BEFORE_BUILD:
                return None
            names = self._build(btf)
            if names is None:
                return None
        try:
            found = names.lookup(btf, raw)
            raw_string, words, offs, first = (btf._raw_string, btf._words, btf._offs,
                                              btf.first_id)
            if all(raw_string(words[offs[i - first]]) == raw for i in found):
                return found
        except IndexError:                      # an id that is not the blob's
            pass
        self.broken, self.names = True, None
        self.remove()
        return None

    # -- writing ---------------------------------------------------------------------------
    def _writable(self) -> bool:
        if not self.unwritable and not (_cache.safe_dir(self.directory, create=True)
                                        and os.access(self.directory, os.W_OK)):
            self.unwritable = True
        return not self.unwritable

    def _build(self, btf: Any) -> Optional[NameIndex]:
        with self._lock:
            if self.names is None and not self.broken and self._writable():
                names = build_names(btf)
                self.write(btf, names)
                self.names = names
            return self.names

    def scanned(self, btf: Any) -> None:
        """``btf`` was scanned (no file held together): store its offsets."""
        if self._writable():
            self.write(btf, None)

    def write(self, btf: Any, names: Optional[NameIndex]) -> bool:
        """Write the offsets of ``btf`` (and ``names``) to the file; False when it
        could not be written."""
        offs = btf._offs
        doc = {"format": FORMAT, "key": self.key, "types": len(offs),
               "names": len(names.ids) if names is not None else None}
        code = offs.tobytes() + (names.ids.tobytes() if names is not None else b"")
        payload = _cache.frame(MAGIC, FORMAT, marshal.dumps(doc), code)
        if not _cache.write_entry(self.path, payload):
            self.unwritable = True
            return False
        _cache.prune(self.directory, STEM, SUFFIX, KEEP)
        return True

    def remove(self) -> None:
        """Delete the file (its answers did not check out)."""
        try:
            os.unlink(self.path)
        except OSError:
            pass


def key_for(data: Any) -> str:
    """The key of the vmlinux blob ``data``: the kernel identity, the blob's size and
    header, the byte order and word size, the format."""
    ident = _cache.kernel_identity()
    head = bytes(data[:24]).hex()
    return (f"{ident['release']}|{ident['version']}|{ident['machine']}|{ident['btf']}|"
            f"{len(data)}|{head}|{sys.byteorder}|{array.array('I').itemsize}|{FORMAT}")


def open_store(data: Any) -> Optional[Store]:
    """The store for the vmlinux blob ``data`` with what its file holds loaded, or None
    when caching is off (``$PYBPF_NO_CACHE``) or the kernel's BTF cannot be read."""
    if not _cache.enabled():
        return None
    try:
        key = key_for(data)
        if "|none|" in key:
            return None
        store = Store(_cache.cache_dir(), key)
        store.load()
    except (OSError, ValueError):       # no home directory, an unreadable file...
        return None
    return store
