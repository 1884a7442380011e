import sys

from ctflow.cli import main

sys.exit(main())
