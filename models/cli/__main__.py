"""`python -m models.cli ...` runs the `twograd` command.

`models` and `models.cli` import nothing heavier than the standard library and `engine` before
`main` runs (numpy and the commands load inside it), so a Ctrl-C during start-up is handled by
`main`: one line, exit 130. The few milliseconds before (the interpreter, runpy, `engine`) are
covered here as far as this file can see them.
"""

import sys

try:
    from models.cli import main
except KeyboardInterrupt:  # Ctrl-C in the very first imports: the same line and status as later
    print("twograd: interrupted", file=sys.stderr)
    sys.exit(130)  # EXIT_INTERRUPTED, spelled out: models.cli may not have finished importing

sys.exit(main())
