"""``python -m climviz`` runs the command line."""

import sys

from climviz.cli import main

if __name__ == "__main__":
    sys.exit(main())
