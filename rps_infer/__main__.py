"""``python -m rps_infer``: the command line.

``python -m rps_infer _bench-worker`` starts the A/B latency gate's worker
(:mod:`rps_infer.bench.gate.worker`). It is a stable entry point: the gate starts it in
older revisions too, so it must keep working through every refactor.
"""

import sys


def main() -> int:
    """Dispatch to the worker or the CLI."""
    if sys.argv[1:2] == ["_bench-worker"]:
        # A worker imports from its own tree only: never through the editable install's finder,
        # which would fill in whatever an older tree lacks from the working tree.
        sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
        from rps_infer.bench.gate.worker import main as worker_main

        return worker_main(sys.argv[2:])
    from rps_infer.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    from rps_infer import signals

    signals.exit_process(main())
