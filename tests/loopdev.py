"""A loop device over a temporary file for block I/O tests, and O_DIRECT reads through
it (each read is one request of known sector and size)."""

import mmap
import os
import shutil
import subprocess
import tempfile

import pytest


def _loop_unavailable():
    if shutil.which("losetup") is None:
        return "losetup is not installed"
    if not os.path.exists("/dev/loop-control"):
        return "no loop device support (/dev/loop-control missing)"
    return ""


needs_loop = pytest.mark.skipif(bool(_loop_unavailable()), reason=_loop_unavailable()
                                or "loop devices")


class LoopDevice:
    """``with LoopDevice(size) as loop``: ``loop.path`` (/dev/loopN), ``loop.name``
    (loopN), ``loop.dev`` (the kernel's dev_t: major << 20 | minor)."""

    def __init__(self, size=8 << 20):
        self.size = size

    def __enter__(self):
        fd, self.backing = tempfile.mkstemp(prefix="pybpf-bio-", dir="/var/tmp")
        os.ftruncate(fd, self.size)
        os.close(fd)
        proc = subprocess.run(["losetup", "-f", "--show", self.backing],
                              capture_output=True, text=True, timeout=30)
        if proc.returncode != 0:
            os.unlink(self.backing)
            pytest.skip(f"cannot set up a loop device: {proc.stderr.strip()}")
        self.path = proc.stdout.strip()
        self.name = os.path.basename(self.path)
        try:
            with open(f"/sys/class/block/{self.name}/dev") as f:
                major, minor = (int(x) for x in f.read().split(":"))
        except BaseException:
            self.__exit__()
            raise
        self.dev = major << 20 | minor
        return self

    def __exit__(self, *exc):
        subprocess.run(["losetup", "-d", self.path], capture_output=True, timeout=30)
        os.unlink(self.backing)

    def read_direct(self, offsets, size=65536):
        """O_DIRECT reads of ``size`` bytes at each offset; returns the sectors read."""
        fd = os.open(self.path, os.O_RDONLY | os.O_DIRECT)
        buf = mmap.mmap(-1, size)
        try:
            for off in offsets:
                assert os.preadv(fd, [buf], off) == size
        finally:
            os.close(fd)
            buf.close()
        return [off // 512 for off in offsets]


class Ext4Mount:
    """``with Ext4Mount() as mnt``: an ext4 file system made in a temporary file and
    mounted through a loop device on a temporary directory (``mnt.path``); skips the
    test naming what is missing (mkfs.ext4, loop devices, ext4 in the kernel). For tools
    that trace ext4 or the page cache: the guest's tmpfs goes through shmem and its 9p
    root through v9fs, neither of which is ext4 or uses buffer heads."""

    def __init__(self, size=64 << 20):
        self.size = size
        self.loop = None
        self.path = None

    def __enter__(self):
        if shutil.which("mkfs.ext4") is None:
            pytest.skip("mkfs.ext4 is not installed")
        for module in ("loop", "ext4"):          # modules in Debian's kernel; best effort
            subprocess.run(["modprobe", module], capture_output=True, timeout=60)
        why = _loop_unavailable()
        if why:
            pytest.skip(why)
        self.loop = LoopDevice(self.size).__enter__()
        try:
            mkfs = subprocess.run(["mkfs.ext4", "-q", "-F", self.loop.path],
                                  capture_output=True, text=True, timeout=120)
            if mkfs.returncode != 0:
                pytest.skip(f"mkfs.ext4 failed: {mkfs.stderr.strip()}")
            self.path = tempfile.mkdtemp(prefix="pybpf-ext4-")
            mount = subprocess.run(["mount", "-t", "ext4", self.loop.path, self.path],
                                   capture_output=True, text=True, timeout=60)
            if mount.returncode != 0:
                os.rmdir(self.path)
                self.path = None
                pytest.skip(f"cannot mount ext4: {mount.stderr.strip()}")
        except BaseException:
            self.loop.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self.path is not None:
            subprocess.run(["umount", self.path], capture_output=True, timeout=60)
            os.rmdir(self.path)
        self.loop.__exit__()
