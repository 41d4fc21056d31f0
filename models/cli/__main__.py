"""`python -m models.cli ...` runs the `twograd` command."""

import sys

from models.cli import main

sys.exit(main())
