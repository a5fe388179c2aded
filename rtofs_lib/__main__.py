import sys

from rtofs_lib.cli.main import main

sys.exit(main())
