"""``python3 -m pybpf`` runs the command line."""

import sys

from pybpf.cli import main

sys.exit(main())
