"""`python -m daemon` is the `aimusicd` command."""

import sys

from .cli.main import main

sys.exit(main())
