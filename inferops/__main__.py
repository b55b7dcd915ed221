import sys

from inferops.cli import main

sys.exit(main())
