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
