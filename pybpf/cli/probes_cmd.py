"""``pybpf probes list|cleanup``: the kprobe/uprobe definitions pybpf made in tracefs.

pybpf defines tracefs probes only when the kernel has no kprobe/uprobe PMU (or when
asked to), in the event group ``pybpf`` with names ``pybpf_<pid>_<n>_<what>``, and
deletes each when its link closes, at exit and on SIGINT/SIGTERM. A process killed with
SIGKILL (or a crash) leaves its definitions behind: ``cleanup`` deletes those whose
process is gone. Other tools' probes are never touched.
"""

from __future__ import annotations

import argparse
import errno
import json
import sys
from typing import List

__all__ = ["register", "run_list", "run_cleanup"]

EXAMPLES = """examples:
  pybpf probes list              pybpf's kprobe/uprobe events in tracefs, live or stale
  pybpf probes list --json       the same as JSON
  pybpf probes cleanup           delete those whose process has died
  pybpf probes cleanup --dry-run show what would be deleted
  pybpf probes cleanup --pid 4242  only what the dead process 4242 left
"""


def register(sub: "argparse._SubParsersAction") -> None:
    """Add the ``probes`` subcommand with ``list`` and ``cleanup``."""
    p = sub.add_parser("probes", help="list or clean up pybpf's tracefs probe events",
                       description="The kprobe/uprobe events pybpf created in tracefs "
                                   "(group 'pybpf'); needs root.",
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    lst = actions.add_parser("list", aliases=["ls"], help="pybpf-created probe events")
    lst.add_argument("--json", action="store_true", help="print JSON")
    lst.set_defaults(handler=run_list)
    clean = actions.add_parser("cleanup", help="delete the events of dead processes")
    clean.add_argument("--dry-run", "-n", action="store_true",
                       help="only print what would be deleted")
    clean.add_argument("--pid", type=int, action="append", metavar="PID",
                       help="only the events of this (dead) process; repeatable")
    clean.set_defaults(handler=run_cleanup)


def run_list(args: argparse.Namespace) -> int:
    """Print pybpf's probe events: kind, event, pid, whether it is alive, definition."""
    from pybpf import tracefs
    rows = []
    for ev in tracefs.iter_pybpf_events():
        pid = ev.pid
        rows.append({"kind": ev.kind, "type": ev.type, "event": f"{ev.group}/{ev.name}",
                     "pid": pid, "alive": bool(pid and tracefs.pid_alive(pid)),
                     "definition": ev.definition})
    if args.json:
        json.dump(rows, sys.stdout, indent=2)
        print()
        return 0
    if not rows:
        print("no pybpf probe events")
        return 0
    for r in rows:
        state = "live" if r["alive"] else "stale"
        print(f"{r['kind']:7} {r['type']:3} {r['event']:40} pid {r['pid']} ({state})  "
              f"{r['definition']}")
    return 0


def run_cleanup(args: argparse.Namespace) -> int:
    """Delete the probe events whose creating process is gone; 1 if any deletion
    failed."""
    from pybpf import tracefs
    stale = [ev for ev in tracefs.stale_probe_events()
             if not args.pid or ev.pid in args.pid]
    failed: List[str] = []
    for ev in stale:
        label = f"{ev.kind} {ev.group}/{ev.name} (pid {ev.pid})"
        if args.dry_run:
            print(f"would delete {label}")
            continue
        try:
            tracefs.remove_probe_event(ev.kind, ev.name, ev.group)
            print(f"deleted {label}")
        except OSError as exc:
            why = ("still in use by an open perf event" if exc.errno == errno.EBUSY
                   else exc.strerror)
            print(f"cannot delete {label}: {why}", file=sys.stderr)
            failed.append(label)
    if not stale:
        print("nothing to clean up")
    return 1 if failed else 0
