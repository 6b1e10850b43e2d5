"""Commands that work on any BPF object: pinning, ids, and ``BPF_OBJ_GET_INFO_BY_FD``.

* :func:`obj_pin` / :func:`obj_get`: a bpffs path for an object, and an fd back from it;
* :func:`get_next_id`, :func:`iter_ids`, :func:`get_fd_by_id`: walk the kernel's
  programs, maps, links and BTF objects by id and open them;
* :func:`obj_get_info_by_fd`: fill one of the ``*InfoStruct`` mirrors of
  ``struct bpf_{prog,map,btf,link}_info``; :func:`prog_info`, :func:`map_info`,
  :func:`btf_info`, :func:`link_info` return friendly dataclasses and read the
  variable-length parts (translated instructions, map ids, names) with a second call
  whose buffers are sized from the first.

Every structure here has ``_c_name_`` (the C type it mirrors) and, for members newer than
Linux 6.1, ``_newer_fields_`` (member -> first Linux release). The info structures may be
larger than the running kernel's: the kernel fills what it knows and reports how much in
``info_len``; the rest stays zero.
"""

from __future__ import annotations

import ctypes
import enum
import errno as _errno
import os
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple, Type, TypeVar, Union

from .._enum import enum_of
from .bpf import Cmd, LinkType, MapType, ProgType, bpf
from .errors import BPFError
from .fd import FD, FdLike, fd_number

__all__ = [
    "FileFlags", "ObjAttr", "GetIdAttr", "InfoAttr", "ProgInfoStruct",
    "MapInfoStruct", "BtfInfoStruct", "LinkInfoStruct", "LINK_INFO_VARIANTS",
    "LinkInfoRawTracepoint", "LinkInfoTracing", "LinkInfoCgroup", "LinkInfoIter",
    "LinkInfoNetns", "LinkInfoXdp", "LinkInfoStructOps", "LinkInfoNetfilter",
    "LinkInfoKprobeMulti", "LinkInfoUprobeMulti", "LinkInfoTcx", "LinkInfoNetkit",
    "LinkInfoSockmap",
    "obj_pin", "obj_get", "object_kind", "get_next_id", "iter_ids", "get_fd_by_id",
    "prog_get_next_id", "map_get_next_id", "link_get_next_id", "btf_get_next_id",
    "prog_get_fd_by_id", "map_get_fd_by_id", "link_get_fd_by_id", "btf_get_fd_by_id",
    "obj_get_info_by_fd", "ProgInfo", "MapInfo", "BtfInfo", "LinkInfo", "prog_info",
    "map_info", "btf_info", "link_info", "BPF_TAG_SIZE", "BPF_FS_MAGIC", "filesystem_magic",
]

_u8 = ctypes.c_uint8
_u32 = ctypes.c_uint32
_s32 = ctypes.c_int32
_u64 = ctypes.c_uint64

#: ``BPF_OBJ_NAME_LEN``
_NAME_LEN = 16
#: length of a program tag (``BPF_TAG_SIZE``): a truncated SHA-1 of its instructions
BPF_TAG_SIZE = 8


@enum_of(enum.IntFlag)
class FileFlags:
    """``file_flags`` of ``BPF_OBJ_GET`` and ``open_flags`` of ``BPF_*_GET_FD_BY_ID``:
    the access the new fd grants (none of them: read and write)."""

    RDONLY = 1 << 3     #: BPF_F_RDONLY (Linux 4.15)
    WRONLY = 1 << 4     #: BPF_F_WRONLY (Linux 4.15)
    PATH_FD = 1 << 14   #: BPF_F_PATH_FD: ``path_fd`` is the directory (Linux 6.5)
    TOKEN_FD = 1 << 16  #: BPF_F_TOKEN_FD: a BPF token fd is given (Linux 6.9)


# ---------------------------------------------------------------------------------------
# union bpf_attr members
# ---------------------------------------------------------------------------------------

class ObjAttr(ctypes.Structure):
    """``union bpf_attr`` as used by ``BPF_OBJ_PIN`` and ``BPF_OBJ_GET``."""

    _c_name_ = "union bpf_attr"
    _newer_fields_ = {"path_fd": (6, 5)}
    _fields_ = [
        ("pathname", _u64),
        ("bpf_fd", _u32),
        ("file_flags", _u32),
        ("path_fd", _s32),
        ("_pad0", _u32),
    ]


class GetIdAttr(ctypes.Structure):
    """``union bpf_attr`` as used by ``BPF_*_GET_NEXT_ID`` and ``BPF_*_GET_FD_BY_ID``.
    ``start_id`` shares its place with ``prog_id``, ``map_id``, ``btf_id`` and ``link_id``."""

    _c_name_ = "union bpf_attr"
    _newer_fields_ = {"fd_by_id_token_fd": (6, 13)}
    _fields_ = [
        ("start_id", _u32),
        ("next_id", _u32),
        ("open_flags", _u32),
        ("fd_by_id_token_fd", _s32),
    ]


class InfoAttr(ctypes.Structure):
    """``union bpf_attr`` as used by ``BPF_OBJ_GET_INFO_BY_FD`` (its ``info`` member)."""

    _c_name_ = "union bpf_attr"
    _c_member_ = "info"
    _fields_ = [
        ("bpf_fd", _u32),
        ("info_len", _u32),
        ("info", _u64),
    ]


# ---------------------------------------------------------------------------------------
# info structures
# ---------------------------------------------------------------------------------------

class ProgInfoStruct(ctypes.Structure):
    """``struct bpf_prog_info``. The ``nr_*``/``*_len`` members say how much the pointer
    members (user-space addresses) may receive; the kernel sets them to the real sizes."""

    _c_name_ = "struct bpf_prog_info"
    _fields_ = [
        ("type", _u32),
        ("id", _u32),
        ("tag", _u8 * BPF_TAG_SIZE),
        ("jited_prog_len", _u32),
        ("xlated_prog_len", _u32),
        ("jited_prog_insns", _u64),
        ("xlated_prog_insns", _u64),
        ("load_time", _u64),
        ("created_by_uid", _u32),
        ("nr_map_ids", _u32),
        ("map_ids", _u64),
        ("name", ctypes.c_char * _NAME_LEN),
        ("ifindex", _u32),
        ("gpl_compatible", _u32, 1),
        ("_pad0", _u32, 31),
        ("netns_dev", _u64),
        ("netns_ino", _u64),
        ("nr_jited_ksyms", _u32),
        ("nr_jited_func_lens", _u32),
        ("jited_ksyms", _u64),
        ("jited_func_lens", _u64),
        ("btf_id", _u32),
        ("func_info_rec_size", _u32),
        ("func_info", _u64),
        ("nr_func_info", _u32),
        ("nr_line_info", _u32),
        ("line_info", _u64),
        ("jited_line_info", _u64),
        ("nr_jited_line_info", _u32),
        ("line_info_rec_size", _u32),
        ("jited_line_info_rec_size", _u32),
        ("nr_prog_tags", _u32),
        ("prog_tags", _u64),
        ("run_time_ns", _u64),
        ("run_cnt", _u64),
        ("recursion_misses", _u64),
        ("verified_insns", _u32),
        ("attach_btf_obj_id", _u32),
        ("attach_btf_id", _u32),
        ("_pad1", _u32),
    ]


class MapInfoStruct(ctypes.Structure):
    """``struct bpf_map_info``."""

    _c_name_ = "struct bpf_map_info"
    _newer_fields_ = {"btf_vmlinux_id": (6, 9), "hash": (6, 18), "hash_size": (6, 18)}
    _fields_ = [
        ("type", _u32),
        ("id", _u32),
        ("key_size", _u32),
        ("value_size", _u32),
        ("max_entries", _u32),
        ("map_flags", _u32),
        ("name", ctypes.c_char * _NAME_LEN),
        ("ifindex", _u32),
        ("btf_vmlinux_value_type_id", _u32),
        ("netns_dev", _u64),
        ("netns_ino", _u64),
        ("btf_id", _u32),
        ("btf_key_type_id", _u32),
        ("btf_value_type_id", _u32),
        ("btf_vmlinux_id", _u32),      # an unnamed pad before Linux 6.9
        ("map_extra", _u64),
        ("hash", _u64),
        ("hash_size", _u32),
        ("_pad0", _u32),
    ]


class BtfInfoStruct(ctypes.Structure):
    """``struct bpf_btf_info``."""

    _c_name_ = "struct bpf_btf_info"
    _fields_ = [
        ("btf", _u64),
        ("btf_size", _u32),
        ("id", _u32),
        ("name", _u64),
        ("name_len", _u32),
        ("kernel_btf", _u32),
    ]


# struct bpf_link_info: three u32s, then an anonymous union (at offset 16: its members
# hold 64-bit fields) with one named struct per link type. Each member below mirrors one
# of those structs (``_c_member_``); LinkInfoStruct reaches them as ``info.<member>``.

class LinkInfoRawTracepoint(ctypes.Structure):
    """Member ``raw_tracepoint`` of ``struct bpf_link_info``."""

    _c_name_ = "struct bpf_link_info"
    _c_member_ = "raw_tracepoint"
    _newer_fields_ = {"cookie": (6, 17)}
    _fields_ = [("tp_name", _u64), ("tp_name_len", _u32), ("_pad0", _u32),
                ("cookie", _u64)]


class LinkInfoTracing(ctypes.Structure):
    """Member ``tracing`` of ``struct bpf_link_info`` (fentry, fexit, fmod_ret, freplace,
    LSM links)."""

    _c_name_ = "struct bpf_link_info"
    _c_member_ = "tracing"
    _newer_fields_ = {"cookie": (6, 17)}
    _fields_ = [("attach_type", _u32), ("target_obj_id", _u32), ("target_btf_id", _u32),
                ("_pad0", _u32), ("cookie", _u64)]


class LinkInfoCgroup(ctypes.Structure):
    """Member ``cgroup`` of ``struct bpf_link_info``."""

    _c_name_ = "struct bpf_link_info"
    _c_member_ = "cgroup"
    _fields_ = [("cgroup_id", _u64), ("attach_type", _u32)]


class _IterMap(ctypes.Structure):
    _fields_ = [("map_id", _u32)]


class _IterUnion1(ctypes.Union):
    _fields_ = [("map", _IterMap)]


class _IterCgroup(ctypes.Structure):
    _fields_ = [("cgroup_id", _u64), ("order", _u32)]


class _IterTask(ctypes.Structure):
    _fields_ = [("tid", _u32), ("pid", _u32)]


class _IterUnion2(ctypes.Union):
    _fields_ = [("cgroup", _IterCgroup), ("task", _IterTask)]


class LinkInfoIter(ctypes.Structure):
    """Member ``iter`` of ``struct bpf_link_info``: ``map.map_id`` for map iterators,
    ``cgroup.cgroup_id``/``cgroup.order`` or ``task.tid``/``task.pid`` for others."""

    _c_name_ = "struct bpf_link_info"
    _c_member_ = "iter"
    _anonymous_ = ("_u1", "_u2")
    _fields_ = [("target_name", _u64), ("target_name_len", _u32), ("_u1", _IterUnion1),
                ("_u2", _IterUnion2)]


class LinkInfoNetns(ctypes.Structure):
    """Member ``netns`` of ``struct bpf_link_info``."""

    _c_name_ = "struct bpf_link_info"
    _c_member_ = "netns"
    _fields_ = [("netns_ino", _u32), ("attach_type", _u32)]


class LinkInfoXdp(ctypes.Structure):
    """Member ``xdp`` of ``struct bpf_link_info``."""

    _c_name_ = "struct bpf_link_info"
    _c_member_ = "xdp"
    _fields_ = [("ifindex", _u32)]


class LinkInfoStructOps(ctypes.Structure):
    """Member ``struct_ops`` of ``struct bpf_link_info`` (Linux 6.4)."""

    _c_name_ = "struct bpf_link_info"
    _c_member_ = "struct_ops"
    _newer_fields_ = {"map_id": (6, 4)}
    _fields_ = [("map_id", _u32)]


class LinkInfoNetfilter(ctypes.Structure):
    """Member ``netfilter`` of ``struct bpf_link_info`` (Linux 6.4)."""

    _c_name_ = "struct bpf_link_info"
    _c_member_ = "netfilter"
    _newer_fields_ = {"pf": (6, 4), "hooknum": (6, 4), "priority": (6, 4), "flags": (6, 4)}
    _fields_ = [("pf", _u32), ("hooknum", _u32), ("priority", _s32), ("flags", _u32)]


class LinkInfoKprobeMulti(ctypes.Structure):
    """Member ``kprobe_multi`` of ``struct bpf_link_info`` (Linux 6.6)."""

    _c_name_ = "struct bpf_link_info"
    _c_member_ = "kprobe_multi"
    _newer_fields_ = {"addrs": (6, 6), "count": (6, 6), "flags": (6, 6), "missed": (6, 7),
                      "cookies": (6, 9)}
    _fields_ = [("addrs", _u64), ("count", _u32), ("flags", _u32), ("missed", _u64),
                ("cookies", _u64)]


class LinkInfoUprobeMulti(ctypes.Structure):
    """Member ``uprobe_multi`` of ``struct bpf_link_info`` (Linux 6.8)."""

    _c_name_ = "struct bpf_link_info"
    _c_member_ = "uprobe_multi"
    _newer_fields_ = {n: (6, 8) for n in ("path", "offsets", "ref_ctr_offsets", "cookies",
                                           "path_size", "count", "flags", "pid")}
    _fields_ = [("path", _u64), ("offsets", _u64), ("ref_ctr_offsets", _u64),
                ("cookies", _u64), ("path_size", _u32), ("count", _u32), ("flags", _u32),
                ("pid", _u32)]


class LinkInfoTcx(ctypes.Structure):
    """Member ``tcx`` of ``struct bpf_link_info`` (Linux 6.6)."""

    _c_name_ = "struct bpf_link_info"
    _c_member_ = "tcx"
    _newer_fields_ = {"ifindex": (6, 6), "attach_type": (6, 6)}
    _fields_ = [("ifindex", _u32), ("attach_type", _u32)]


class LinkInfoNetkit(ctypes.Structure):
    """Member ``netkit`` of ``struct bpf_link_info`` (Linux 6.7)."""

    _c_name_ = "struct bpf_link_info"
    _c_member_ = "netkit"
    _newer_fields_ = {"ifindex": (6, 7), "attach_type": (6, 7)}
    _fields_ = [("ifindex", _u32), ("attach_type", _u32)]


class LinkInfoSockmap(ctypes.Structure):
    """Member ``sockmap`` of ``struct bpf_link_info`` (Linux 6.10)."""

    _c_name_ = "struct bpf_link_info"
    _c_member_ = "sockmap"
    _newer_fields_ = {"map_id": (6, 10), "attach_type": (6, 10)}
    _fields_ = [("map_id", _u32), ("attach_type", _u32)]


#: link type -> (member name, structure) of its part of the union
LINK_INFO_VARIANTS: Dict[int, Tuple[str, type]] = {
    LinkType.RAW_TRACEPOINT: ("raw_tracepoint", LinkInfoRawTracepoint),
    LinkType.TRACING: ("tracing", LinkInfoTracing),
    LinkType.CGROUP: ("cgroup", LinkInfoCgroup),
    LinkType.ITER: ("iter", LinkInfoIter),
    LinkType.NETNS: ("netns", LinkInfoNetns),
    LinkType.XDP: ("xdp", LinkInfoXdp),
    LinkType.STRUCT_OPS: ("struct_ops", LinkInfoStructOps),
    LinkType.NETFILTER: ("netfilter", LinkInfoNetfilter),
    LinkType.KPROBE_MULTI: ("kprobe_multi", LinkInfoKprobeMulti),
    LinkType.UPROBE_MULTI: ("uprobe_multi", LinkInfoUprobeMulti),
    LinkType.TCX: ("tcx", LinkInfoTcx),
    LinkType.NETKIT: ("netkit", LinkInfoNetkit),
    LinkType.SOCKMAP: ("sockmap", LinkInfoSockmap),
}


class _LinkInfoUnion(ctypes.Union):
    _fields_ = [(member, struct) for member, struct in LINK_INFO_VARIANTS.values()]


class LinkInfoStruct(ctypes.Structure):
    """``struct bpf_link_info``: the common head, then the per-type members
    (``info.raw_tracepoint.tp_name``, ``info.xdp.ifindex``, ...)."""

    _c_name_ = "struct bpf_link_info"
    _anonymous_ = ("_u",)
    _fields_ = [("type", _u32), ("id", _u32), ("prog_id", _u32), ("_u", _LinkInfoUnion)]


# ---------------------------------------------------------------------------------------
# pinning
# ---------------------------------------------------------------------------------------

def _path_buf(path: Union[str, bytes, "os.PathLike[str]"]) -> ctypes.Array:
    raw = os.fsencode(path)
    if b"\0" in raw:
        raise ValueError(f"path {path!r} contains a NUL byte")
    return ctypes.create_string_buffer(raw)


def obj_pin(fd: FdLike, path: Union[str, "os.PathLike[str]"], *,
            path_fd: Optional[int] = None) -> None:
    """Pin the object behind ``fd`` at ``path`` in a BPF file system (``BPF_OBJ_PIN``,
    Linux 4.4). With ``path_fd`` (Linux 6.5), a relative ``path`` is taken from that
    directory. The pin keeps the object alive until the file is removed."""
    buf = _path_buf(path)
    attr = ObjAttr(pathname=ctypes.addressof(buf), bpf_fd=fd_number(fd))
    if path_fd is not None:
        attr.file_flags = FileFlags.PATH_FD
        attr.path_fd = path_fd
    bpf(Cmd.OBJ_PIN, attr)


def obj_get(path: Union[str, "os.PathLike[str]"], *, file_flags: int = 0,
            path_fd: Optional[int] = None, kind: Optional[str] = None) -> FD:
    """Open the object pinned at ``path`` (``BPF_OBJ_GET``, Linux 4.4) and return an owned
    fd. ``file_flags``: :attr:`FileFlags.RDONLY` or :attr:`FileFlags.WRONLY` (Linux 4.15)
    for a restricted fd. ``kind`` labels the :class:`FD` (default: read from the fd)."""
    buf = _path_buf(path)
    attr = ObjAttr(pathname=ctypes.addressof(buf), file_flags=file_flags)
    if path_fd is not None:
        attr.file_flags |= FileFlags.PATH_FD
        attr.path_fd = path_fd
    try:
        num = bpf(Cmd.OBJ_GET, attr)
    except BPFError as exc:
        if path_fd is not None or exc.errno not in (_errno.ENOENT, _errno.EACCES,
                                                    _errno.EPERM, _errno.EINVAL,
                                                    _errno.ENOTDIR):
            raise
        raise _obj_get_error(os.fsdecode(path), exc) from None
    try:
        label = kind or object_kind(num) or "bpf object"
    except BaseException:
        os.close(num)
        raise
    return FD(num, label)


#: ``f_type`` of a BPF file system in ``statfs()``
BPF_FS_MAGIC = 0xCAFE4A11


def filesystem_magic(path: Union[str, "os.PathLike[str]"]) -> int:
    """The ``f_type`` that ``statfs(2)`` reports for the file system holding ``path``
    (:data:`BPF_FS_MAGIC` for a BPF file system); ``OSError`` if ``path`` cannot be
    reached."""
    buf = ctypes.create_string_buffer(512)     # struct statfs; f_type comes first
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.statfs(os.fsencode(path), buf) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"statfs: {os.strerror(err)}", os.fspath(path))
    return ctypes.c_long.from_buffer(buf).value & 0xFFFFFFFF


def _obj_get_error(path: str, exc: BPFError) -> BPFError:
    """``BPF_OBJ_GET``'s refusal explained with the path: nothing there, a directory on
    the way that is a file, or a file outside any BPF file system."""
    command = "BPF_OBJ_GET"
    hint = "objects are pinned in a BPF file system, such as /sys/fs/bpf"
    if exc.errno == _errno.ENOENT:
        return BPFError(exc.errno, f"{path}: nothing is pinned there (no such file)",
                        command=command, hint=hint)
    if exc.errno == _errno.ENOTDIR:
        return BPFError(exc.errno, f"{path}: a part of the path is not a directory",
                        command=command, hint=hint)
    try:
        on_bpffs = filesystem_magic(path) == BPF_FS_MAGIC
    except OSError:
        on_bpffs = True          # cannot tell: keep the kernel's answer
    if not on_bpffs:
        return type(exc)(exc.errno, f"{path}: not a pinned BPF object (the file is not "
                         "in a BPF file system)", command=command, hint=hint)
    if os.path.isdir(path):
        return BPFError(exc.errno, f"{path}: is a directory, not a pinned object",
                        command=command, hint=f"ls {path} lists what is pinned there")
    return type(exc)(exc.errno, f"{path}: {exc.strerror}", command=command, hint=exc.hint)


_ANON_INODE_KINDS = {"bpf-map": "map", "bpf-prog": "prog", "bpf_link": "link",
                     "btf": "btf", "bpf-token": "token"}


def object_kind(fd: FdLike) -> Optional[str]:
    """What a descriptor refers to: ``"map"``, ``"prog"``, ``"link"``, ``"btf"`` or
    ``"token"``; None for anything else (read from ``/proc/self/fd``)."""
    try:
        target = os.readlink(f"/proc/self/fd/{fd_number(fd)}")
    except OSError:
        return None
    if not target.startswith("anon_inode:"):
        return None
    return _ANON_INODE_KINDS.get(target[len("anon_inode:"):])


# ---------------------------------------------------------------------------------------
# ids
# ---------------------------------------------------------------------------------------

_NEXT_ID_CMDS = {"prog": Cmd.PROG_GET_NEXT_ID, "map": Cmd.MAP_GET_NEXT_ID,
                 "link": Cmd.LINK_GET_NEXT_ID, "btf": Cmd.BTF_GET_NEXT_ID}
_FD_BY_ID_CMDS = {"prog": Cmd.PROG_GET_FD_BY_ID, "map": Cmd.MAP_GET_FD_BY_ID,
                  "link": Cmd.LINK_GET_FD_BY_ID, "btf": Cmd.BTF_GET_FD_BY_ID}


_MAX_ID = (1 << 31) - 1


def _kind_cmd(table: Dict[str, Cmd], kind: str) -> Cmd:
    try:
        return table[kind]
    except KeyError:
        raise ValueError(f"object kind must be one of {sorted(table)}, not {kind!r}") from None


def get_next_id(kind: str, start_id: int = 0) -> Optional[int]:
    """The smallest id above ``start_id`` of a live object of ``kind`` (``"prog"``,
    ``"map"``: Linux 4.13; ``"btf"``: 5.4; ``"link"``: 5.8), or None past the last.
    On an older kernel :func:`~pybpf.syscall.bpf.bpf` raises ``NotSupportedError``."""
    cmd = _kind_cmd(_NEXT_ID_CMDS, kind)
    if start_id >= _MAX_ID:
        return None             # ids are positive ints; the kernel refuses to look past
    attr = GetIdAttr(start_id=start_id)
    try:
        bpf(cmd, attr, 8)       # start_id and next_id only: accepted by every kernel
    except OSError as exc:
        if exc.errno == _errno.ENOENT:
            return None
        raise
    return int(attr.next_id)


def iter_ids(kind: str) -> Iterator[int]:
    """Every id of a live object of ``kind``, ascending (see :func:`get_next_id`).
    Objects created or freed during the walk may or may not be seen."""
    current = 0
    while True:
        nxt = get_next_id(kind, current)
        if nxt is None:
            return
        yield nxt
        current = nxt


def get_fd_by_id(kind: str, obj_id: int, *, open_flags: int = 0,
                 token_fd: Optional[int] = None) -> FD:
    """Open the object of ``kind`` with id ``obj_id`` (``BPF_*_GET_FD_BY_ID``; needs
    CAP_SYS_ADMIN). ``open_flags`` (:class:`FileFlags`, maps and links) restricts the
    fd; ``token_fd`` (BTF only, Linux 6.13) passes a BPF token. Raises ``BPFError``
    with ``ENOENT`` when no such object exists (any more)."""
    cmd = _kind_cmd(_FD_BY_ID_CMDS, kind)
    attr = GetIdAttr(start_id=obj_id, open_flags=open_flags)
    size = 12
    if token_fd is not None:
        attr.open_flags |= FileFlags.TOKEN_FD
        attr.fd_by_id_token_fd = token_fd
        size = 16
    return FD(bpf(cmd, attr, size), kind)


def prog_get_next_id(start_id: int = 0) -> Optional[int]:
    """:func:`get_next_id` for programs (Linux 4.13)."""
    return get_next_id("prog", start_id)


def map_get_next_id(start_id: int = 0) -> Optional[int]:
    """:func:`get_next_id` for maps (Linux 4.13)."""
    return get_next_id("map", start_id)


def link_get_next_id(start_id: int = 0) -> Optional[int]:
    """:func:`get_next_id` for links (Linux 5.8)."""
    return get_next_id("link", start_id)


def btf_get_next_id(start_id: int = 0) -> Optional[int]:
    """:func:`get_next_id` for BTF objects (Linux 5.4)."""
    return get_next_id("btf", start_id)


def prog_get_fd_by_id(prog_id: int) -> FD:
    """:func:`get_fd_by_id` for a program (Linux 4.13)."""
    return get_fd_by_id("prog", prog_id)


def map_get_fd_by_id(map_id: int, *, open_flags: int = 0) -> FD:
    """:func:`get_fd_by_id` for a map (Linux 4.13; ``open_flags`` 4.15)."""
    return get_fd_by_id("map", map_id, open_flags=open_flags)


def link_get_fd_by_id(link_id: int) -> FD:
    """:func:`get_fd_by_id` for a link (Linux 5.8)."""
    return get_fd_by_id("link", link_id)


def btf_get_fd_by_id(btf_id: int, *, token_fd: Optional[int] = None) -> FD:
    """:func:`get_fd_by_id` for a BTF object (Linux 5.4)."""
    return get_fd_by_id("btf", btf_id, token_fd=token_fd)


# ---------------------------------------------------------------------------------------
# BPF_OBJ_GET_INFO_BY_FD
# ---------------------------------------------------------------------------------------

_S = TypeVar("_S", bound=ctypes.Structure)


def obj_get_info_by_fd(fd: FdLike, info: _S) -> int:
    """Fill ``info`` (an ``*InfoStruct`` instance, zeroed except for the buffers it asks
    for) with ``BPF_OBJ_GET_INFO_BY_FD`` (Linux 4.13) and return how many bytes the
    kernel wrote: members past that are ones this kernel does not know."""
    attr = InfoAttr(bpf_fd=fd_number(fd), info_len=ctypes.sizeof(info),
                    info=ctypes.addressof(info))
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr)
    return int(attr.info_len)


def _enum_or_int(cls: Type[enum.IntEnum], value: int) -> Union[enum.IntEnum, int]:
    try:
        return cls(value)
    except ValueError:
        return int(value)


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode(errors="replace")


@dataclass
class MapInfo:
    """What the kernel says about a map (``struct bpf_map_info``). ``type`` is a
    :class:`~pybpf.syscall.bpf.MapType` when known, else the number."""

    type: Union[MapType, int]
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    ifindex: int = 0
    btf_id: int = 0
    btf_key_type_id: int = 0
    btf_value_type_id: int = 0
    btf_vmlinux_value_type_id: int = 0
    btf_vmlinux_id: int = 0
    netns_dev: int = 0
    netns_ino: int = 0
    map_extra: int = 0


def map_info(fd: FdLike) -> MapInfo:
    """:class:`MapInfo` of the map behind ``fd`` (Linux 4.13)."""
    raw = MapInfoStruct()
    obj_get_info_by_fd(fd, raw)
    return MapInfo(
        type=_enum_or_int(MapType, raw.type), id=raw.id, key_size=raw.key_size,
        value_size=raw.value_size, max_entries=raw.max_entries, map_flags=raw.map_flags,
        name=_cstr(raw.name), ifindex=raw.ifindex, btf_id=raw.btf_id,
        btf_key_type_id=raw.btf_key_type_id, btf_value_type_id=raw.btf_value_type_id,
        btf_vmlinux_value_type_id=raw.btf_vmlinux_value_type_id,
        btf_vmlinux_id=raw.btf_vmlinux_id, netns_dev=raw.netns_dev,
        netns_ino=raw.netns_ino, map_extra=raw.map_extra)


@dataclass
class ProgInfo:
    """What the kernel says about a program (``struct bpf_prog_info``).

    ``map_ids`` lists the maps the program uses; ``xlated_prog_insns`` and
    ``jited_prog_insns`` are the translated and JIT-compiled code when asked for (None
    otherwise; empty when the kernel hides them, e.g. with ``kernel.kptr_restrict``).
    ``raw`` is the whole structure from the first call.
    """

    type: Union[ProgType, int]
    id: int
    tag: bytes
    name: str
    load_time: int
    created_by_uid: int
    gpl_compatible: bool
    xlated_prog_len: int
    jited_prog_len: int
    map_ids: List[int] = field(default_factory=list)
    xlated_prog_insns: Optional[bytes] = field(default=None, repr=False)
    jited_prog_insns: Optional[bytes] = field(default=None, repr=False)
    ifindex: int = 0
    netns_dev: int = 0
    netns_ino: int = 0
    btf_id: int = 0
    run_time_ns: int = 0
    run_cnt: int = 0
    recursion_misses: int = 0
    verified_insns: int = 0
    attach_btf_obj_id: int = 0
    attach_btf_id: int = 0
    raw: Optional[ProgInfoStruct] = field(default=None, repr=False, compare=False)

    @property
    def tag_hex(self) -> str:
        """The tag as bpftool prints it (16 hex digits)."""
        return self.tag.hex()


def prog_info(fd: FdLike, *, map_ids: bool = True, xlated: bool = False,
              jited: bool = False) -> ProgInfo:
    """:class:`ProgInfo` of the program behind ``fd`` (Linux 4.13).

    With ``map_ids``, ``xlated`` or ``jited``, a second call fetches those arrays into
    buffers sized from the first call's counts (``xlated``: Linux 4.13; ``map_ids``:
    4.15). Reading code needs CAP_SYS_ADMIN or CAP_PERFMON-level access.
    """
    first = ProgInfoStruct()
    obj_get_info_by_fd(fd, first)
    ids: List[int] = []
    xlated_code: Optional[bytes] = None
    jited_code: Optional[bytes] = None
    want_ids = map_ids and first.nr_map_ids
    want_x = xlated and first.xlated_prog_len
    want_j = jited and first.jited_prog_len
    if want_ids or want_x or want_j:
        second = ProgInfoStruct()
        ids_buf = (_u32 * first.nr_map_ids)() if want_ids else None
        x_buf = ctypes.create_string_buffer(first.xlated_prog_len) if want_x else None
        j_buf = ctypes.create_string_buffer(first.jited_prog_len) if want_j else None
        if ids_buf is not None:
            second.nr_map_ids = len(ids_buf)
            second.map_ids = ctypes.addressof(ids_buf)
        if x_buf is not None:
            second.xlated_prog_len = len(x_buf)
            second.xlated_prog_insns = ctypes.addressof(x_buf)
        if j_buf is not None:
            second.jited_prog_len = len(j_buf)
            second.jited_prog_insns = ctypes.addressof(j_buf)
        obj_get_info_by_fd(fd, second)
        # the kernel copies at most what fits and reports the true size: a map bound
        # between the two calls only makes the count larger than our buffer
        if ids_buf is not None:
            ids = list(ids_buf)[:min(second.nr_map_ids, len(ids_buf))]
        if x_buf is not None:
            xlated_code = x_buf.raw[:min(second.xlated_prog_len, len(x_buf))]
        if j_buf is not None:
            jited_code = j_buf.raw[:min(second.jited_prog_len, len(j_buf))]
    if xlated and xlated_code is None:
        xlated_code = b""
    if jited and jited_code is None:
        jited_code = b""
    return ProgInfo(
        type=_enum_or_int(ProgType, first.type), id=first.id, tag=bytes(first.tag),
        name=_cstr(first.name), load_time=first.load_time,
        created_by_uid=first.created_by_uid, gpl_compatible=bool(first.gpl_compatible),
        xlated_prog_len=first.xlated_prog_len, jited_prog_len=first.jited_prog_len,
        map_ids=ids, xlated_prog_insns=xlated_code, jited_prog_insns=jited_code,
        ifindex=first.ifindex, netns_dev=first.netns_dev, netns_ino=first.netns_ino,
        btf_id=first.btf_id, run_time_ns=first.run_time_ns, run_cnt=first.run_cnt,
        recursion_misses=first.recursion_misses, verified_insns=first.verified_insns,
        attach_btf_obj_id=first.attach_btf_obj_id, attach_btf_id=first.attach_btf_id,
        raw=first)


@dataclass
class BtfInfo:
    """What the kernel says about a BTF object (``struct bpf_btf_info``). ``name`` is
    ``"vmlinux"`` or a module's name for kernel BTF (Linux 5.11), else empty; ``data`` is
    the raw BTF when asked for."""

    id: int
    btf_size: int
    name: str
    kernel_btf: bool
    data: Optional[bytes] = field(default=None, repr=False)


def btf_info(fd: FdLike, *, data: bool = False) -> BtfInfo:
    """:class:`BtfInfo` of the BTF object behind ``fd`` (Linux 5.4); ``data`` also
    fetches the BTF blob itself."""
    first = BtfInfoStruct()
    obj_get_info_by_fd(fd, first)
    name_buf = ctypes.create_string_buffer(first.name_len + 1) if first.name_len else None
    blob = ctypes.create_string_buffer(first.btf_size) if data and first.btf_size else None
    name = ""
    raw_data: Optional[bytes] = b"" if data else None
    if name_buf is not None or blob is not None:
        second = BtfInfoStruct()
        if name_buf is not None:
            second.name = ctypes.addressof(name_buf)
            second.name_len = len(name_buf)
        if blob is not None:
            second.btf = ctypes.addressof(blob)
            second.btf_size = len(blob)
        obj_get_info_by_fd(fd, second)
        if name_buf is not None:
            name = _cstr(name_buf.raw)
        if blob is not None:
            raw_data = blob.raw[:min(second.btf_size, len(blob))]
    return BtfInfo(id=first.id, btf_size=first.btf_size, name=name,
                   kernel_btf=bool(first.kernel_btf), data=raw_data)


@dataclass
class LinkInfo:
    """What the kernel says about a link (``struct bpf_link_info``).

    ``details`` holds the members of the link type's part of the union (user-space
    pointer members left out); for raw tracepoint and iterator links the name is read
    too (``tp_name``, ``target_name``). ``raw`` is the filled structure.
    """

    type: Union[LinkType, int]
    id: int
    prog_id: int
    details: Dict[str, Any] = field(default_factory=dict)
    raw: Optional[LinkInfoStruct] = field(default=None, repr=False, compare=False)


# members holding user-space addresses: inputs, not information
_LINK_POINTERS = {"tp_name", "target_name", "addrs", "cookies", "path", "offsets",
                  "ref_ctr_offsets"}
# string members that a second call can read: pointer member -> its length member
_LINK_STRINGS = {LinkType.RAW_TRACEPOINT: ("tp_name", "tp_name_len"),
                 LinkType.ITER: ("target_name", "target_name_len")}


def _members(obj: Any, out: Dict[str, Any]) -> None:
    for entry in type(obj)._fields_:
        name = entry[0]
        value = getattr(obj, name)
        if isinstance(value, (ctypes.Structure, ctypes.Union)):
            _members(value, out)
        elif not name.startswith("_") and name not in _LINK_POINTERS and name not in out:
            out[name] = value


def link_info(fd: FdLike) -> LinkInfo:
    """:class:`LinkInfo` of the link behind ``fd`` (Linux 5.8)."""
    first = LinkInfoStruct()
    obj_get_info_by_fd(fd, first)
    details: Dict[str, Any] = {}
    variant = LINK_INFO_VARIANTS.get(first.type)
    if variant is not None:
        member = variant[0]
        strings = _LINK_STRINGS.get(first.type)
        if strings is not None:
            ptr_name, len_name = strings
            length = getattr(getattr(first, member), len_name)
            if length:
                buf = ctypes.create_string_buffer(length + 1)
                second = LinkInfoStruct()
                part = getattr(second, member)
                setattr(part, ptr_name, ctypes.addressof(buf))
                setattr(part, len_name, len(buf))
                obj_get_info_by_fd(fd, second)
                details[ptr_name] = _cstr(buf.raw)
        if first.type == LinkType.ITER:
            # which of the iterator's union members is meaningful depends on the target
            part = first.iter
            details["target_name_len"] = part.target_name_len
            details["map_id"] = part.map.map_id
            details["cgroup_id"] = part.cgroup.cgroup_id
            details["order"] = part.cgroup.order
        else:
            _members(getattr(first, member), details)
    return LinkInfo(type=_enum_or_int(LinkType, first.type), id=first.id,
                    prog_id=first.prog_id, details=details, raw=first)
