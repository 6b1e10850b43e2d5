"""Stack trace maps (``BPF_MAP_TYPE_STACK_TRACE``): what ``bpf_get_stackid`` fills."""

from __future__ import annotations

import ctypes
import struct
from typing import Any, List, Union

from ..syscall.bpf import MapFlags, MapType
from .base import Map
from .spec import MapSpec

__all__ = ["StackTraceMap", "BuildIdFrame", "StackCodec", "MAX_STACK_DEPTH"]

#: the kernel's default limit on frames per stack (``kernel.perf_event_max_stack``)
MAX_STACK_DEPTH = 127


class BuildIdFrame(ctypes.Structure):
    """One frame of a stack map created with ``BPF_F_STACK_BUILD_ID``: ``status`` 0 for
    an unused slot, 1 for a build id and offset, 2 for a raw ``ip`` only."""

    _c_name_ = "struct bpf_stack_build_id"
    _fields_ = [("status", ctypes.c_int32), ("build_id", ctypes.c_uint8 * 20),
                ("offset", ctypes.c_uint64)]

    @property
    def ip(self) -> int:
        """The address, for frames with status 2 (shares room with ``offset``)."""
        return int(self.offset)

    def __repr__(self) -> str:
        return (f"BuildIdFrame(status={self.status}, build_id={bytes(self.build_id).hex()}, "
                f"offset={self.offset:#x})")


class StackCodec:
    """Values of a stack trace map: a list of frames, the unused slots at the end left
    out. Frames are addresses (ints), or :class:`BuildIdFrame` with build ids."""

    def __init__(self, value_size: int, build_id: bool, owner: str) -> None:
        self.frame_size = ctypes.sizeof(BuildIdFrame) if build_id else 8
        self.build_id = build_id
        self.depth = value_size // self.frame_size
        self.size = value_size
        self.owner = owner
        self.role = "value"

    def describe(self) -> str:
        """The expected value, for messages."""
        what = "BuildIdFrames" if self.build_id else "addresses"
        return f"a list of at most {self.depth} {what}"

    def pack_into(self, buf: Any, offset: int, frames: Any) -> None:
        """Write ``frames`` (the kernel itself refuses updates from user space)."""
        if not isinstance(frames, (list, tuple)):
            raise TypeError(f"{self.owner}: value must be {self.describe()}, got "
                            f"{type(frames).__name__}")
        if len(frames) > self.depth:
            raise ValueError(f"{self.owner}: value must be {self.describe()}, got "
                             f"{len(frames)} frames")
        view = memoryview(buf).cast("B")
        view[offset:offset + self.size] = bytes(self.size)
        for i, frame in enumerate(frames):
            at = offset + i * self.frame_size
            if self.build_id:
                view[at:at + self.frame_size] = bytes(frame)
            else:
                struct.pack_into("=Q", buf, at, frame)

    def unpack(self, buf: Any, offset: int = 0) -> List[Union[int, BuildIdFrame]]:
        """The frames at ``offset``."""
        raw = memoryview(buf).cast("B")[offset:offset + self.size]
        if self.build_id:
            frames: List[Any] = [BuildIdFrame.from_buffer_copy(raw, i * self.frame_size)
                                 for i in range(self.depth)]
            while frames and frames[-1].status == 0:
                frames.pop()
            return frames
        addrs = raw.cast("Q").tolist()
        while addrs and addrs[-1] == 0:
            addrs.pop()
        return addrs

    def decode(self, raw: Any) -> List[Any]:
        """The frames in ``raw``."""
        return self.unpack(raw, 0)

    def decode_many(self, raw: Any, count: int, stride: int = 0) -> List[List[Any]]:
        """``count`` stacks."""
        stride = stride or self.size
        return [self.unpack(raw, i * stride) for i in range(count)]


class StackTraceMap(Map):
    """Stacks recorded by programs with ``bpf_get_stackid`` (``BPF_MAP_TYPE_STACK_TRACE``,
    Linux 4.6): stack id (``c_uint32``) -> list of return addresses, innermost first.
    ``StackTraceMap(max_entries=1024, depth=64)``; with ``flags=MapFlags.STACK_BUILD_ID``
    (Linux 4.17) frames are :class:`BuildIdFrame`. User space can read and delete
    stacks, not store them.
    """

    map_types = (MapType.STACK_TRACE,)
    spec_defaults = {"key": ctypes.c_uint32}

    @classmethod
    def _spec_from_kwargs(cls, kwargs: dict) -> MapSpec:
        depth = kwargs.pop("depth", None)
        if "value" not in kwargs:
            frame = (ctypes.sizeof(BuildIdFrame)
                     if kwargs.get("flags", 0) & MapFlags.STACK_BUILD_ID else 8)
            kwargs["value"] = frame * (MAX_STACK_DEPTH if depth is None else int(depth))
        elif depth is not None:
            raise TypeError("StackTraceMap(): give depth= or value=, not both")
        return super()._spec_from_kwargs(kwargs)

    def _prepare_spec(self, spec: MapSpec) -> MapSpec:
        spec = super()._prepare_spec(spec)
        if isinstance(spec.key, int) and spec.key == 4:
            spec = spec.copy(key=ctypes.c_uint32)
        frame = (ctypes.sizeof(BuildIdFrame) if spec.flags & MapFlags.STACK_BUILD_ID else 8)
        if spec.key_size != 4 or not spec.value_size or spec.value_size % frame:
            raise ValueError(f"{spec.label}: keys are 4-byte stack ids and values a multiple "
                             f"of {frame} bytes (one frame each)")
        return spec

    def _value_codec(self, spec: MapSpec) -> Any:
        return StackCodec(spec.value_size, bool(spec.flags & MapFlags.STACK_BUILD_ID),
                          spec.label)

    @property
    def depth(self) -> int:
        """Frames per stack."""
        return self._vc.depth  # type: ignore[no-any-return]
