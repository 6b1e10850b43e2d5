"""Test session set-up: subprocesses the tests start (tools in programs/, `python3 -m
pybpf`, scripts) import pybpf from this checkout, not from an older installed copy."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_old = os.environ.get("PYTHONPATH", "")
if ROOT not in _old.split(os.pathsep):
    os.environ["PYTHONPATH"] = ROOT + (os.pathsep + _old if _old else "")
