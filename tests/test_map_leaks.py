"""No descriptor outlives its map: explicit close, ``with``, errors and garbage collection
all leave ``/proc/self/fd`` as it was."""

from __future__ import annotations

import gc
import os
import warnings
from ctypes import c_uint32, c_uint64

import pytest

from pybpf.maps import ArrayMap, HashMap, Map, MapFlags, MapSpec, MapType, QueueMap
from pybpf.syscall import maps as sysmaps


from bpfenv import needs_bpf

pytestmark = needs_bpf


def _fds() -> set:
    return set(os.listdir("/proc/self/fd"))


@pytest.fixture
def fd_snapshot():
    gc.collect()
    before = _fds()
    yield
    gc.collect()
    after = _fds()
    # listdir itself opens one fd, which is gone again by now
    assert after == before, f"leaked: {sorted(after - before)}"


def test_create_close_cycles(fd_snapshot):
    for i in range(1000):
        m = HashMap(key=c_uint32, value=c_uint64, max_entries=8)
        m[i] = i
        assert m[i] == i
        m.close()
    for _ in range(200):
        with ArrayMap(value=c_uint32, max_entries=4, flags=MapFlags.MMAPABLE) as a:
            a.memory[0:4] = b"\x01\0\0\0"       # the mapping's own fd goes too
            assert a[0] == 1


def test_garbage_collected_maps(fd_snapshot):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for i in range(1000):
            m = HashMap(key=c_uint32, value=c_uint32, max_entries=4)
            m[1] = i
            del m                            # refcount drops to zero: finalised now
        maps = [QueueMap(value=c_uint32, max_entries=2) for _ in range(50)]
        cycle = {"maps": maps}
        cycle["self"] = cycle                # only the cycle collector frees these
        del maps, cycle
        gc.collect()


def test_unclosed_map_warns():
    with pytest.warns(ResourceWarning, match="unclosed"):
        m = HashMap(key=c_uint32, value=c_uint32, max_entries=4)
        del m
        gc.collect()


def test_errors_release_descriptors(fd_snapshot, tmp_path):
    for _ in range(50):
        with pytest.raises(OSError):
            HashMap(key=c_uint32, value=c_uint32, max_entries=0)      # EINVAL
        with pytest.raises(ValueError):
            with HashMap(key=c_uint32, value=c_uint32, max_entries=2) as m:
                raise ValueError("inside")
        assert m.closed
        with HashMap(key=4, value=4, max_entries=1) as m:
            with pytest.raises(ValueError):
                m.pin(str(tmp_path / "not-bpffs"))                    # nothing leaks
        with pytest.raises(ValueError):
            Map.from_fd(sysmaps.map_create(MapType.HASH, 4, 4, 1), value=c_uint64)
        spec = MapSpec(MapType.ARRAY_OF_MAPS, key=c_uint32, value=4, max_entries=1,
                       inner=MapSpec(MapType.ARRAY, 4, 4, 0))        # bad inner map
        with pytest.raises(OSError):
            spec.create()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        for _ in range(100):
            it = iter(HashMap(key=c_uint32, value=c_uint32, max_entries=2).items())
            del it                           # an iterator holding the last reference
