"""``python -m climviz`` runs the command line."""

import sys

from climviz.cli import main

sys.exit(main())
