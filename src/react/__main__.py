import sys

from react.cli import main

sys.exit(main())
