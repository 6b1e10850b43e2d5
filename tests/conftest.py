"""Test session set-up: subprocesses the tests start (tools in programs/, `python3 -m
pybpf`, scripts) import pybpf from this checkout, not from an older installed copy."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_old = os.environ.get("PYTHONPATH", "")
if ROOT not in _old.split(os.pathsep):
    os.environ["PYTHONPATH"] = ROOT + (os.pathsep + _old if _old else "")

# the cache of compiled modules (pybpf.dsl.cache): one directory per test session, so
# tests (and the tools they start) neither read nor fill the user's cache
if "PYBPF_CACHE_DIR" not in os.environ:
    import atexit
    import shutil
    import tempfile

    _cache = tempfile.mkdtemp(prefix="pybpf-test-cache-")
    os.environ["PYBPF_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, True)
