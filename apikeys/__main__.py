"""`python -m apikeys`: the operator CLI."""

import sys

from apikeys.cli import main

sys.exit(main())
