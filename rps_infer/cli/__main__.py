"""``python -m rps_infer.cli``: the command line (how tests and the load generator start a server)."""

import sys

from rps_infer.cli import main

sys.exit(main())
