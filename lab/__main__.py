"""`python -m lab` is `workbook`, for when the console script is not on the PATH."""

import sys

from lab.cli import main

sys.exit(main())
