"""Addresses to names: the kernel's through ``/proc/kallsyms``, a process's through
``/proc/PID/maps`` and the ELF symbol tables of the files it has mapped; and the ways
tools print stacks (one frame a line, BCC's ``_[k]`` annotation, ``+0x12`` offsets, the
folded ``comm;frame;frame count`` lines of flame graphs).

* :func:`kernel_symbols` returns the process-wide :class:`KernelSymbols`, read once on
  first use: every ``/proc/kallsyms`` entry sorted by address, searched with
  :mod:`bisect`. Only text symbols give names; a data symbol, or a ``__pfx_``/``__cfi_``
  padding symbol, ends the function before it, so an address past the end of the kernel
  text is ``[unknown]``, never "the last function + a large offset". Module symbols carry
  their module (``bpf`` for JIT-ed BPF programs).
* :class:`UserSymbols` resolves ``(pid, address)``: the executable mapping holding the
  address gives a file offset, the file's ``PT_LOAD`` segments turn it into the address
  the file was linked at (PIE executables, shared libraries and fixed-address executables
  alike), and the function symbols of ``.symtab`` and ``.dynsym``
  (:mod:`pybpf.elf.symbols`) name it. Files are opened through
  ``/proc/PID/map_files/`` (the very inode mapped, deleted or not, in the process's
  mount namespace), else through ``/proc/PID/root`` when the inode still matches. The
  ``[vdso]`` image is read from the process's memory. A process's mappings are cached and
  read again on a miss (a library loaded later), and dropped when the pid is found to
  belong to a newer process.
* What cannot be named is :data:`UNKNOWN` (``"[unknown]"``), with the module when one is
  known: an exited process, an anonymous mapping, an address outside every symbol.

Nothing here imports :mod:`pybpf.dsl` or the command line.
"""

from __future__ import annotations

import bisect
import os
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from .elf.libs import MapEntry, proc_maps
from .elf.symbols import (PF_X, PT_LOAD, STB_GLOBAL, STB_WEAK, STT_FUNC, STT_GNU_IFUNC,
                          ElfFile)

__all__ = ["UNKNOWN", "Frame", "KernelSymbols", "UserSymbols", "kernel_symbols",
           "frame_names", "stack_lines", "folded", "stack_addresses"]

#: the name of an address nothing names
UNKNOWN = "[unknown]"
_TEXT_RANK = {"T": 0, "W": 1, "t": 2, "w": 3}   # which alias names a shared address


class Frame(NamedTuple):
    """One resolved address. ``name`` is :data:`UNKNOWN` when no symbol covers it (then
    ``offset`` is 0). ``module`` is the kernel module (``""`` for the kernel itself) or,
    in user space, the mapped file's path as ``/proc/PID/maps`` shows it (``"[vdso]"``;
    ``""`` when the address is in no file)."""

    address: int
    name: str
    offset: int
    module: str
    kernel: bool

    @property
    def known(self) -> bool:
        """Whether a symbol names the address."""
        return self.name != UNKNOWN

    def format(self, offsets: bool = False, annotate: bool = False,
               modules: bool = False) -> str:
        """``name``, then ``+0x12`` (``offsets``, known names only), `` [module]``
        (``modules``: the kernel module or the file's base name) and ``_[k]`` on kernel
        frames (``annotate``, BCC's ``-a``)."""
        text = self.name
        if offsets and self.known:
            text += f"+{self.offset:#x}"
        if modules and self.module:
            text += f" [{os.path.basename(self.module) or self.module}]"
        if annotate and self.kernel:
            text += "_[k]"
        return text


# -- kernel ------------------------------------------------------------------------------
class KernelSymbols:
    """The kernel's symbols from ``/proc/kallsyms`` (or ``path``), sorted by address.
    When the file hides addresses (all zero: ``kptr_restrict``, no privilege) or cannot
    be read, :attr:`available` is False and every address is :data:`UNKNOWN`."""

    def __init__(self, path: str = "/proc/kallsyms") -> None:
        entries = []
        try:
            with open(path, encoding="ascii", errors="replace") as fh:
                text = fh.read()
        except OSError:
            text = ""
        for order, line in enumerate(text.splitlines()):
            parts = line.split()
            if len(parts) < 3:
                continue
            addr = int(parts[0], 16)
            if not addr:
                continue
            name = parts[2]
            rank = _TEXT_RANK.get(parts[1], 9)
            if name.startswith(("__pfx_", "__cfi_")):
                rank = 9                        # padding before a function: no name
            module = parts[3].strip("[]") if len(parts) > 3 else ""
            entries.append((addr, rank, order, name, module))
        entries.sort()
        self._addrs: List[int] = []
        self._names: List[Optional[str]] = []
        self._modules: List[str] = []
        for addr, rank, _order, name, module in entries:
            if self._addrs and self._addrs[-1] == addr:
                continue                        # the best-ranked alias came first
            self._addrs.append(addr)
            self._names.append(name if rank < 9 else None)
            self._modules.append(module)

    @property
    def available(self) -> bool:
        """Whether addresses can be named at all."""
        return bool(self._addrs)

    def lookup(self, address: int) -> Frame:
        """The text symbol covering ``address``: the nearest symbol at or below it,
        when that is a function (aliases at one address: global before weak before
        local, then the first listed)."""
        i = bisect.bisect_right(self._addrs, address) - 1
        if i < 0 or self._names[i] is None:
            return Frame(address, UNKNOWN, 0, self._modules[i] if i >= 0 else "", True)
        return Frame(address, self._names[i], address - self._addrs[i],  # type: ignore
                     self._modules[i], True)

    def stack(self, addresses: Iterable[int]) -> List[Frame]:
        """Every address of a kernel stack, in order."""
        return [self.lookup(a) for a in addresses]

    def address(self, name: str) -> Optional[int]:
        """The address of text symbol ``name`` (when it is the name chosen for its
        address), or None."""
        try:
            return self._addrs[self._names.index(name)]
        except ValueError:
            return None


_kernel: Optional[KernelSymbols] = None


def kernel_symbols() -> KernelSymbols:
    """The process-wide :class:`KernelSymbols`, read from ``/proc/kallsyms`` on first
    use (module loads after that are not seen)."""
    global _kernel
    if _kernel is None:
        _kernel = KernelSymbols()
    return _kernel


# -- user space --------------------------------------------------------------------------
class _ElfFunctions:
    """One ELF image's function symbols by link-time address, and its loadable segments
    (executable ones first, for file offsets two segments share)."""

    def __init__(self, path: str) -> None:
        self.starts: List[int] = []
        self.ends: List[int] = []
        self.names: List[str] = []
        best: Dict[int, Tuple[Tuple[int, int, int], int, str]] = {}
        with ElfFile(path) as elf:
            self.segments = sorted((s for s in elf.segments if s.type == PT_LOAD),
                                   key=lambda s: not s.flags & PF_X)
            self._add(elf, (".symtab", ".dynsym"), best)
            debug = None
            if elf.section(".symtab") is None:
                from .elf.functions import separate_debug_file
                debug = separate_debug_file(elf)
        if debug:                               # a stripped file's local functions
            try:
                with ElfFile(debug) as delf:
                    self._add(delf, (".symtab",), best)
            except (OSError, ValueError):
                pass
        starts = sorted(best)
        for i, value in enumerate(starts):
            _rank, size, name = best[value]
            nxt = starts[i + 1] if i + 1 < len(starts) else value + max(size, 1)
            self.starts.append(value)
            self.ends.append(value + size if size else nxt)
            self.names.append(name)

    @staticmethod
    def _add(elf: ElfFile, tables: Tuple[str, ...], best: Dict[int, Any]) -> None:
        for table in tables:
            for s in elf.iter_symbols(table):
                if s.type not in (STT_FUNC, STT_GNU_IFUNC) or not s.value \
                        or not s.defined:
                    continue
                name = s.name.split("@", 1)[0]
                if not name:
                    continue
                rank = (0 if s.size else 1, len(name) - len(name.lstrip("_")),
                        {STB_GLOBAL: 0, STB_WEAK: 1}.get(s.bind, 2))
                if s.value not in best or rank < best[s.value][0]:
                    best[s.value] = (rank, s.size, name)

    def lookup(self, file_offset: int) -> Optional[Tuple[str, int]]:
        """(name, offset) of the function at ``file_offset``, or None."""
        for seg in self.segments:
            if seg.offset <= file_offset < seg.offset + seg.filesz:
                vaddr = file_offset - seg.offset + seg.vaddr
                i = bisect.bisect_right(self.starts, vaddr) - 1
                if i >= 0 and vaddr < self.ends[i]:
                    return self.names[i], vaddr - self.starts[i]
                return None
        return None


class _Mapping:
    """One executable mapping; its file's symbols are read on its first lookup."""

    def __init__(self, pid: int, entry: MapEntry) -> None:
        self.pid, self.entry = pid, entry
        self.start, self.end, self.offset = entry.start, entry.end, entry.offset
        self.module = entry.path
        self.loaded = False
        self.functions: Optional[_ElfFunctions] = None


class _Process:
    """One process's executable mappings, sorted by start, and its identity."""

    def __init__(self, pid: int, identity: Optional[tuple]) -> None:
        self.pid = pid
        self.identity = identity
        self.starts: List[int] = []
        self.mappings: List[_Mapping] = []
        self.misses: Dict[int, Frame] = {}      # addresses not mapped at the last read
        self.alive = True

    def find(self, address: int) -> Optional[_Mapping]:
        i = bisect.bisect_right(self.starts, address) - 1
        if i >= 0 and address < self.mappings[i].end:
            return self.mappings[i]
        return None


def _identity(pid: int) -> Optional[Tuple[int, Optional[Tuple[int, int]]]]:
    """Process ``pid`` as (start time in clock ticks after boot, device and inode of its
    executable, None for kernel threads and zombies): a pid reused by a newer process,
    or a process that ran ``execve``, differs. None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
    except OSError:
        return None
    try:
        exe = os.stat(f"/proc/{pid}/exe")
        image: Optional[Tuple[int, int]] = (exe.st_dev, exe.st_ino)
    except OSError:
        image = None
    return int(stat[stat.rindex(b")") + 2:].split()[19]), image


def _same_process(now: Optional[tuple], cached: Optional[tuple]) -> bool:
    """Whether ``now`` (an :func:`_identity`) can be the process cached as ``cached``:
    gone (its stacks were sampled while it ran), or the same start time and, when both
    are known, the same executable."""
    if now is None:
        return True
    return cached is not None and now[0] == cached[0] and (
        now[1] is None or cached[1] is None or now[1] == cached[1])


class UserSymbols:
    """User-space addresses of processes to names, with a cache per pid and per file.

    A pid's mappings are read on first use and again whenever an address falls in none
    of them (a library loaded since). Each lookup (each stack, with :meth:`stack`) first
    checks the process's start time and executable, so a pid reused by a newer process,
    or a process that ran ``execve``, starts afresh. Once a process has exited, its
    cached mappings keep answering (stacks sampled while it ran); a process that exited
    before its first lookup has only :data:`UNKNOWN` frames.
    """

    def __init__(self) -> None:
        self._procs: Dict[int, _Process] = {}
        self._files: Dict[tuple, Optional[_ElfFunctions]] = {}

    def forget(self, pid: int) -> None:
        """Drop what is cached about ``pid``."""
        self._procs.pop(pid, None)

    def lookup(self, pid: int, address: int) -> Frame:
        """The function at ``address`` in process ``pid``."""
        return self._resolve(self._process(pid), address)

    def stack(self, pid: int, addresses: Iterable[int]) -> List[Frame]:
        """Every address of one user stack of ``pid``, in order (the process is checked
        once for the whole stack)."""
        proc = self._process(pid)
        return [self._resolve(proc, a) for a in addresses]

    # -- internals ------------------------------------------------------------------------
    def _process(self, pid: int) -> _Process:
        identity = _identity(pid)
        proc = self._procs.get(pid)
        if proc is not None and _same_process(identity, proc.identity):
            proc.alive = identity is not None
            return proc
        proc = self._procs[pid] = _Process(pid, identity)
        self._read_maps(proc)
        return proc

    def _resolve(self, proc: _Process, address: int) -> Frame:
        m = proc.find(address)
        if m is None:
            if address in proc.misses or not proc.alive:
                return proc.misses.get(address) or Frame(address, UNKNOWN, 0, "", False)
            self._read_maps(proc)
            m = proc.find(address)
            if m is None:
                proc.misses[address] = Frame(address, UNKNOWN, 0, "", False)
                return proc.misses[address]
        if not m.loaded:
            m.functions, m.loaded = self._functions(m.pid, m.entry), True
        hit = m.functions.lookup(address - m.start + m.offset) if m.functions else None
        if hit is None:
            return Frame(address, UNKNOWN, 0, m.module, False)
        return Frame(address, hit[0], hit[1], m.module, False)

    def _read_maps(self, proc: _Process) -> None:
        proc.misses.clear()
        try:
            entries = proc_maps(proc.pid)
        except (ProcessLookupError, PermissionError):
            proc.alive = False
            return
        old = {m.entry: m for m in proc.mappings}
        proc.mappings = sorted((old.get(e) or _Mapping(proc.pid, e) for e in entries
                                if "x" in e.perms), key=lambda m: m.start)
        proc.starts = [m.start for m in proc.mappings]

    def _functions(self, pid: int, entry: MapEntry) -> Optional[_ElfFunctions]:
        """The symbols of the file behind a mapping, shared by every process mapping
        the same file (device, inode, size, modification time)."""
        if entry.path == "[vdso]":
            return self._vdso(pid, entry)
        if not entry.path.startswith("/"):
            return None                         # anonymous, [vsyscall], [anon:...]
        path = f"/proc/{pid}/map_files/{entry.start:x}-{entry.end:x}"
        try:
            st = os.stat(path)
        except OSError:                         # no map_files access: the path, if
            path = f"/proc/{pid}/root{entry.path}"      # it is still the same inode
            try:
                st = os.stat(path)
            except OSError:
                return None
            if st.st_ino != entry.inode:
                return None
        key = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
        if key not in self._files:
            try:
                self._files[key] = _ElfFunctions(path)
            except (OSError, ValueError):
                self._files[key] = None
        return self._files[key]

    def _vdso(self, pid: int, entry: MapEntry) -> Optional[_ElfFunctions]:
        """The ``[vdso]`` image, read from the process's memory (it is the kernel's,
        identical for processes of one ABI, so images are shared by content)."""
        try:
            with open(f"/proc/{pid}/mem", "rb", buffering=0) as fh:
                fh.seek(entry.start)
                image = fh.read(entry.end - entry.start)
        except (OSError, OverflowError):
            return None
        key = ("[vdso]", image)
        if key not in self._files:
            fd = os.memfd_create("pybpf-vdso", os.MFD_CLOEXEC)
            try:
                os.write(fd, image)
                self._files[key] = _ElfFunctions(f"/proc/self/fd/{fd}")
            except (OSError, ValueError):
                self._files[key] = None
            finally:
                os.close(fd)
        return self._files[key]


# -- formatting --------------------------------------------------------------------------
def stack_addresses(stacks, stack_id: int) -> Optional[List[int]]:
    """The addresses of stack ``stack_id`` in a stack trace map (innermost first, empty
    slots left out), or None for a negative id (``bpf_get_stackid`` failed) or an id no
    longer in the map."""
    if stack_id < 0:
        return None
    try:
        return [a for a in stacks[stack_id] if a]
    except KeyError:
        return None


def frame_names(frames: Iterable[Frame], offsets: bool = False, annotate: bool = False,
                modules: bool = False) -> Tuple[str, ...]:
    """The frames as text (see :meth:`Frame.format`), in order."""
    return tuple(f.format(offsets, annotate, modules) for f in frames)


def stack_lines(names: Sequence[str], indent: str = "    ") -> List[str]:
    """One line per frame, innermost first, indented (BCC's multi-line layout)."""
    return [indent + n for n in names]


def folded(comm: str, user: Sequence[str], kernel: Sequence[str], count: int,
           delimiter: bool = False) -> str:
    """One line of the folded format flame graphs read: ``comm``, then the user frames
    and the kernel frames outermost first, separated by ``;``, then the count. Stacks are
    given innermost first, as the kernel records them; ``delimiter`` puts ``-`` between
    a user and a kernel part."""
    parts = [comm, *reversed(user)]
    if delimiter and user and kernel:
        parts.append("-")
    parts.extend(reversed(kernel))
    return f"{';'.join(parts)} {count}"
