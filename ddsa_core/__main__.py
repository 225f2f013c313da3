"""``python -m ddsa_core``: the command line of :mod:`ddsa_core.cli`."""
import sys

from .cli import main

sys.exit(main())
