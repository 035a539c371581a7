"""`python -m app ...` is the `secretmagic` command (app.cli)."""

import sys

from app.cli import main

sys.exit(main())
