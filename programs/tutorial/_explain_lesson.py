"""What the three verifier lessons share: show each program through ``pybpf explain``
(text, and with ``--html DIR`` a page per program file) so the learner sees where the
verifier refuses the broken version and why the fix passes."""

import argparse
import os
from typing import List, Optional

HERE = os.path.dirname(os.path.abspath(__file__))


def explain_lesson(name: str, files: List[str], argv: Optional[List[str]] = None) -> int:
    """Run ``pybpf explain`` on each of ``files`` (relative to programs/tutorial/);
    ``--html DIR`` writes ``DIR/<file>.html`` too."""
    from pybpf.cli import main as pybpf_main
    parser = argparse.ArgumentParser(prog=name, description="Show what the verifier sees "
                                     "of this lesson's refused program and of its fix.")
    parser.add_argument("--html", metavar="DIR", help="also write one page per file here")
    args = parser.parse_args(argv)
    status = 0
    for file in files:
        cmd = ["explain", os.path.join(HERE, file)]
        if args.html:
            os.makedirs(args.html, exist_ok=True)
            stem = os.path.splitext(file)[0]
            cmd += ["--html", os.path.join(args.html, stem + ".html")]
        status |= pybpf_main(cmd)
    return status
