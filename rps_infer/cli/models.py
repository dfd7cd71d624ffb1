"""``rps-infer models build|list``: the model zoo (models/zoo.toml)."""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("models", help="the model zoo (models/zoo.toml)")
    msub = p.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    b = msub.add_parser("build", help="build the zoo's artifacts into models/build/")
    b.add_argument("names", nargs="*", metavar="NAME", help="models or families (digits) to build, or 'all' "
                   "(default: the CI set, the models marked ci = true)")
    b.add_argument("--force", action="store_true", help="rebuild even if up to date")
    msub.add_parser("list", help="list the zoo's models and the backends each is timed on")


def run(args: argparse.Namespace) -> int:
    """List the zoo, or build the named entries."""
    import rps_infer.zoo as zoo

    entries = zoo.load_zoo()
    if args.models_command == "list":
        from rps_infer import tables

        rows = []
        for e in entries.values():
            params = e.params.model_dump()
            source = e.source.name if e.source is not None else ", ".join(f"{k}={v}" for k, v in params.items())
            rows.append((e.name, e.family, source, e.tolerance, "yes" if e.ci else "no",
                         "yes" if e.is_built() else "no", ",".join(e.backends)))
        print(tables.render(("name", "family", "source", "tolerance", "ci", "built", "backends"), rows, width=1000))
        return 0
    if args.names == ["all"]:
        selected = list(entries.values())
    else:
        selected = zoo.select(entries, args.names) if args.names else [e for e in entries.values() if e.ci]
    zoo.build(selected, force=args.force, progress=lambda msg: print(f"  {msg}"))
    for e in selected:
        print(f"{e.name}: {e.onnx_path}")
    rest = sorted(set(entries) - {e.name for e in selected})
    if not args.names and rest:
        print(f"built the CI set; the others ({', '.join(rest)}): rps-infer models build NAME ... or all")
    return 0
