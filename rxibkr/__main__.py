import sys

from rxibkr.cli import main

sys.exit(main())
