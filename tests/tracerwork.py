"""The workload of the generic tracers' tests (funccount, stackcount, trace, argdist): a
gcc-built C program with known functions called a known number of times, and BCC's
tool of the same name run on it for comparison.

The program waits for a line on stdin (the tools attach first), then:
``fc_mid`` 3 times (each calls ``fc_leaf``, which makes the getppid system call
straight from its own frame, so a stack taken at the tracepoint shows
fc_leaf <- fc_mid <- main), ``fc_other`` 5 times (i = 0..4, each after USDT probe
``pybpf:other`` with arguments i and 10 * i, where sys/sdt.h is installed), ``malloc(100 + i)`` 7 times
(i = 0..6, with ``malloc(0x7fffffffffff)`` failing once more), opens
``/tmp/pybpf-tracer-N`` (N = 0..1, ENOENT), prints ``done`` and waits for stdin to end.
"""

import atexit
import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import weakref

SOURCE = r"""
#include <stdio.h>
#include <stdlib.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/syscall.h>
#if __has_include(<sys/sdt.h>)
#include <sys/sdt.h>
#define OTHER_PROBE(i) DTRACE_PROBE2(pybpf, other, i, (i) * 10)
#else
#define OTHER_PROBE(i)
#endif

__attribute__((noinline)) long fc_leaf(long x) {
    long ret;
    asm volatile ("syscall" : "=a"(ret) : "0"((long)SYS_getppid) : "rcx", "r11", "memory");
    return x + (ret > 0);
}
__attribute__((noinline)) long fc_mid(long x) { asm volatile(""); return fc_leaf(x) * 2; }
__attribute__((noinline)) long fc_other(long x) { asm volatile(""); return x - 1; }

int main(void) {
    char line[16], path[64];
    if (!fgets(line, sizeof line, stdin)) return 1;
    long s = 0;
    for (long i = 0; i < 3; i++) s += fc_mid(i);
    for (long i = 0; i < 5; i++) { OTHER_PROBE(i); s += fc_other(i); }
    for (int i = 0; i < 7; i++) { char *volatile p = malloc(100 + i); s += p != 0; free(p); }
    void *volatile big = malloc(0x7fffffffffffUL);
    s += big != 0;
    for (int i = 0; i < 2; i++) {
        snprintf(path, sizeof path, "/tmp/pybpf-tracer-%d", i);
        s += open(path, O_RDONLY) < 0;
    }
    printf("done %ld\n", s);
    fflush(stdout);
    fgets(line, sizeof line, stdin);        /* stays (for symbols) until stdin ends */
    return 0;
}
"""

BCC_DIR = "/usr/sbin"
#: BCC 0.26 opens its uprobes with a stray reference-counter offset, and the kernel
#: refuses two uprobes at one place whose offsets differ: comparisons with BCC probe the
#: workload's own functions, where no other tracer on the machine has a uprobe (libc's
#: malloc may be probed by another test meanwhile)
BCC_PYTHON = "/usr/bin/python3"


@functools.lru_cache(maxsize=None)
def binary() -> str:
    """The workload, built once per test process (gcc -O0: every function keeps
    its frame pointer, fc_leaf too, though gcc -O1 sees it as a leaf)."""
    d = tempfile.mkdtemp(prefix="pybpf-tracerwork-")
    atexit.register(shutil.rmtree, d, True)
    src, exe = os.path.join(d, "work.c"), os.path.join(d, "work")
    with open(src, "w") as fh:
        fh.write(SOURCE)
    subprocess.run(["gcc", "-O0", "-g", "-fno-omit-frame-pointer",
                    "-o", exe, src], check=True)
    return exe


def has_usdt() -> bool:
    """Whether the workload has its USDT probe (gcc found sys/sdt.h)."""
    from pybpf.elf.usdt import usdt_probes
    return any(p.name == "other" for p in usdt_probes(binary()))


def start() -> subprocess.Popen:
    """The workload, started and waiting for its go line."""
    return subprocess.Popen([binary()], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)


def go(child: subprocess.Popen, keep: bool = False) -> None:
    """Let the workload run to its end; with ``keep`` it stays alive (its maps readable
    for symbols) until :func:`end`."""
    child.stdin.write("go\n")
    child.stdin.flush()
    assert child.stdout.readline().startswith("done")
    if not keep:
        end(child)


def end(child: subprocess.Popen) -> None:
    """End a workload kept by :func:`go`."""
    if child.stdin and not child.stdin.closed:
        child.stdin.close()
    child.wait(timeout=30)


def bcc_tool(name: str) -> str:
    """The path of BCC's tool NAME (Debian's bpfcc-tools), or "" when it is not installed
    or has no kernel headers to compile with (:func:`bcc_environ`)."""
    path = os.path.join(BCC_DIR, f"{name}-bpfcc")
    ok = os.path.exists(path) and os.path.exists(BCC_PYTHON) and bcc_environ() is not None
    return path if ok else ""


def bcc_missing(name: str) -> str:
    """Why BCC's NAME cannot run here (a skip reason), or "" when it can."""
    if not os.path.exists(os.path.join(BCC_DIR, f"{name}-bpfcc")):
        return f"BCC's {name} (bpfcc-tools) is not installed"
    if bcc_environ() is None:
        return (f"BCC's {name} has no kernel headers to compile with: none for "
                f"{os.uname().release} (/lib/modules/VER/build, CONFIG_IKHEADERS) and no "
                f"Debian linux-headers package")
    return ""


def _merge_tree(dst: str, sources: list) -> None:
    """Make ``dst`` the union of the directories ``sources`` out of symlinks: a name in
    one source only (or a file) links to the last source that has it; a directory in
    several is made and merged the same way."""
    os.makedirs(dst, exist_ok=True)
    names = {}
    for src in sources:
        for entry in os.listdir(src):
            names.setdefault(entry, []).append(os.path.join(src, entry))
    for entry, paths in names.items():
        dirs = [p for p in paths if os.path.isdir(p) and not os.path.islink(p)]
        if len(dirs) > 1 and len(dirs) == len(paths):
            _merge_tree(os.path.join(dst, entry), dirs)
        else:
            os.symlink(paths[-1], os.path.join(dst, entry))


@functools.lru_cache(maxsize=None)
def bcc_environ():
    """The environment BCC's tools run in here, or None when BCC cannot compile.

    BCC compiles its C against the running kernel's headers: ``/lib/modules/VER/build``,
    or the ``kheaders`` module. A kernel built with neither (this machine's 6.18) is given
    Debian's packaged headers (``linux-headers-amd64``, which ``.ci/run`` installs: the
    version-specific and the common package, merged into one tree as
    ``BCC_KERNEL_SOURCE`` wants it). The BCC tools these tests compare with read
    tracepoint formats, pt_regs and user memory, none of which the headers' version
    changes."""
    release = os.uname().release
    if os.path.isdir(f"/lib/modules/{release}/build") or \
            os.path.exists("/sys/kernel/kheaders.tar.xz"):
        return dict(os.environ)
    import glob
    for arch in sorted(glob.glob("/usr/src/linux-headers-*-amd64"), reverse=True):
        common = arch[:-len("amd64")] + "common"
        if os.path.isdir(common) and os.path.exists(os.path.join(arch, "include",
                                                                 "generated")):
            tree = tempfile.mkdtemp(prefix="pybpf-bcc-headers-")
            atexit.register(shutil.rmtree, tree, True)
            _merge_tree(os.path.join(tree, "src"), [common, arch])
            return dict(os.environ, BCC_KERNEL_SOURCE=os.path.join(tree, "src"))
    return None


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


class Bcc:
    """BCC's tool ``name`` running with ``args``; ready once ``header`` was printed."""

    def __init__(self, name: str, *args, header: str, timeout: float = 120.0) -> None:
        self.proc = subprocess.Popen([BCC_PYTHON, "-u", bcc_tool(name), *map(str, args)],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=bcc_environ())
        weakref.finalize(self, _kill, self.proc)      # a failing test leaves none behind
        self.lines = []
        deadline = time.monotonic() + timeout
        while not any(header in line for line in self.lines):
            line = self.proc.stdout.readline()
            if not line and (self.proc.poll() is not None or time.monotonic() > deadline):
                self.proc.kill()
                out, err = self.proc.communicate()
                raise AssertionError(f"BCC {name}: no header {header!r}\n"
                                     f"{''.join(self.lines)}{out}\n{err}")
            if line:
                self.lines.append(line)

    def stop(self, timeout: float = 60.0):
        """SIGINT, then (returncode, stdout text, stderr text)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            out, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate()
        return self.proc.returncode, "".join(self.lines) + out, err


def table(text: str, first: str) -> dict:
    """The rows after the last header line starting with ``first`` (``NAME  COUNT``) as
    {name: count}."""
    rows = {}
    for line in text.splitlines():
        if line.startswith(first):
            rows = {}
            continue
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            rows[parts[0]] = int(parts[1])
    return rows


sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), "programs"))


def wait_attached(proc: subprocess.Popen, links: int = 1, timeout: float = 60.0) -> None:
    """Wait until process ``proc`` holds ``links`` BPF links (a tool that prints no
    header, such as stackcount -f, is then attached)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}: {proc.stderr.read()}")
        held = 0
        try:
            for fd in os.listdir(f"/proc/{proc.pid}/fdinfo"):
                try:
                    with open(f"/proc/{proc.pid}/fdinfo/{fd}") as fh:
                        held += "link_type:" in fh.read()
                except OSError:
                    pass
        except OSError:
            pass
        if held >= links:
            return
        time.sleep(0.05)
    raise AssertionError(f"not attached within {timeout} s")


def wait_perf_events(proc: subprocess.Popen, count: int = 1, timeout: float = 120.0) -> None:
    """Wait until process ``proc`` holds ``count`` perf event descriptors (BCC attaches
    its probes as perf events, without BPF links)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}: {proc.stderr.read()}")
        held = 0
        try:
            for fd in os.listdir(f"/proc/{proc.pid}/fd"):
                try:
                    held += os.readlink(f"/proc/{proc.pid}/fd/{fd}") == \
                        "anon_inode:[perf_event]"
                except OSError:
                    pass
        except OSError:
            pass
        if held >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"no perf event within {timeout} s")
