import sys

from rxibkr.cli.main import main

sys.exit(main())
