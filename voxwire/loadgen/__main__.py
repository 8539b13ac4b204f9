"""``python -m voxwire.loadgen``: the same as ``voxwire loadgen``."""

import sys

from voxwire.loadgen.cli import main

sys.exit(main())
