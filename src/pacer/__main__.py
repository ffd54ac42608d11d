import sys

from pacer.cli import main

sys.exit(main())
