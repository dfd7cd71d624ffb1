"""``python -m rps_infer.cli``: the command line (how tests and the load generator start a server)."""

from rps_infer import signals
from rps_infer.cli import main

if __name__ == "__main__":  # not when a spawned helper process imports this as its parent's main
    signals.exit_process(main())
