"""``python3 -m pybpf.bpftrace [options] FILE | - | -e PROG [args]``: bpftrace's command
line, drop-in (the same as ``pybpf trace`` and the ``pybpf-bpftrace`` script)."""

from pybpf.bpftrace.command import entry_point

entry_point()
