"""``python -m rps_infer``: the command line.

``python -m rps_infer _bench-worker`` starts the A/B latency gate's worker
(:mod:`rps_infer.bench.runners.worker`). It is a stable entry point: the gate starts it in
older revisions too, so it must keep working through every refactor.
"""

import sys


def main() -> int:
    """Dispatch to the worker or the CLI."""
    if sys.argv[1:2] == ["_bench-worker"]:
        if "--installed" not in sys.argv:
            # A worker of a tree with its own rps_infer imports from that tree only: never through
            # the editable install's finder, which would fill in what an older tree lacks.
            sys.meta_path[:] = [f for f in sys.meta_path
                                if not getattr(f, "__module__", "").startswith("__editable__")]
        from rps_infer.bench.runners.worker import main as worker_main

        return worker_main(sys.argv[2:])
    from rps_infer.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    from rps_infer import signals

    signals.exit_process(main())
