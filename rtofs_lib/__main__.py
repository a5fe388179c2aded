import sys

from rtofs_lib.cli import main

sys.exit(main())
