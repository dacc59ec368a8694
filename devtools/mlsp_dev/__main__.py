"""`python -m mlsp_dev`: the same as the `mlsp-dev` command."""

import sys

from mlsp_dev.cli import main

sys.exit(main())
