"""Running ``pybpf`` and the tools as a user would, for the table-driven tests of bad
input: as root, or as an unprivileged user (uid 65534 through ``setpriv``) against a
copy of this checkout that such a user can read, or as root with capabilities dropped.

:func:`run` returns a :class:`Outcome`; :func:`assert_one_line_error` checks the shape
every error must have on the command line: the expected exit status, no traceback, and
one line on stderr that contains the expected words.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
NOBODY = 65534
#: Debian's interpreter: the test runner's own may live under /root, which uid 65534
#: cannot enter
SYSTEM_PYTHON = "/usr/bin/python3"


@dataclass
class Outcome:
    """What a command did: exit status, standard output and standard error."""

    returncode: int
    stdout: str
    stderr: str

    @property
    def error_lines(self) -> list:
        """The non-empty lines of standard error."""
        return [ln for ln in self.stderr.splitlines() if ln.strip()]


_COPY: Optional[str] = None


def readable_copy() -> str:
    """A copy of this checkout's ``pybpf`` and ``programs`` packages (and pyelftools) in
    a directory every user can read, made once per test session; the PYTHONPATH for
    unprivileged runs."""
    global _COPY
    if _COPY is None:
        import elftools
        top = tempfile.mkdtemp(prefix="pybpf-nobody-")
        ignore = shutil.ignore_patterns("__pycache__")
        shutil.copytree(ROOT / "pybpf", os.path.join(top, "pybpf"), ignore=ignore)
        shutil.copytree(ROOT / "programs", os.path.join(top, "programs"), ignore=ignore)
        shutil.copytree(os.path.dirname(elftools.__file__), os.path.join(top, "elftools"),
                        ignore=ignore)
        for base, dirs, files in os.walk(top):
            os.chmod(base, 0o755)
            for name in files:
                os.chmod(os.path.join(base, name), 0o644)
        os.chmod(top, stat.S_IRWXU | stat.S_IRGRP | stat.S_IXGRP | stat.S_IROTH | stat.S_IXOTH)
        _COPY = top
    return _COPY


def can_run_unprivileged() -> str:
    """Why unprivileged runs are impossible here, or ""."""
    if os.geteuid() != 0:
        return "needs root to switch to uid 65534"
    if shutil.which("setpriv") is None:
        return "needs setpriv (util-linux) to run as uid 65534"
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return f"needs {SYSTEM_PYTHON} (readable by uid 65534)"
    return ""


def run(args: Sequence[str], *, user: str = "root", tool: Optional[str] = None,
        stdin: Optional[str] = None, env: Optional[Dict[str, str]] = None,
        drop_caps: Iterable[str] = (), timeout: float = 60,
        cwd: Optional[str] = None) -> Outcome:
    """Run ``pybpf ARGS`` (or ``programs/TOOL.py ARGS`` with ``tool``).

    ``user``: ``"root"`` (this checkout, this interpreter) or ``"nobody"`` (uid/gid
    65534, no groups, Debian's interpreter, the readable copy). ``drop_caps``: as root,
    capability names without ``CAP_`` (``"bpf"``, ``"sys_admin"``) removed from the
    bounding and inheritable sets first."""
    e = dict(os.environ)
    e.pop("PYTHONDONTWRITEBYTECODE", None)
    if user == "nobody":
        path = readable_copy()
        e["PYTHONPATH"] = path
        e["HOME"] = "/tmp"
        python = SYSTEM_PYTHON
        prefix = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]
        workdir = cwd or path
    elif user == "root":
        e["PYTHONPATH"] = str(ROOT) + (os.pathsep + e["PYTHONPATH"]
                                       if e.get("PYTHONPATH") else "")
        python = sys.executable
        prefix = []
        workdir = cwd or str(ROOT)
    else:
        raise ValueError(f"user must be 'root' or 'nobody', not {user!r}")
    if drop_caps:
        drop = ",".join(f"-{c.lower().removeprefix('cap_')}" for c in drop_caps)
        prefix = ["setpriv", f"--inh-caps={drop}", f"--bounding-set={drop}"] + prefix
    if env:
        e.update(env)
    if tool is not None:
        argv = [python, "-m", f"programs.{tool}", *args]
    else:
        argv = [python, "-m", "pybpf", *args]
    proc = subprocess.run(prefix + argv, capture_output=True, text=True, timeout=timeout,
                          input=stdin, env=e, cwd=workdir,
                          stdin=None if stdin is not None else subprocess.DEVNULL)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def assert_one_line_error(out: Outcome, *words: str, status: int = 1) -> None:
    """The command failed with ``status``, printed no traceback, and said one line on
    stderr containing every one of ``words`` (case-insensitive)."""
    assert out.returncode == status, (out.returncode, out.stderr, out.stdout[-2000:])
    assert "Traceback" not in out.stderr, out.stderr
    lines = out.error_lines
    assert len(lines) == 1, out.stderr
    low = lines[0].lower()
    missing = [w for w in words if w.lower() not in low]
    assert not missing, (missing, lines[0])
