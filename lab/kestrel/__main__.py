import sys

from lab.kestrel.cli import main

sys.exit(main())
