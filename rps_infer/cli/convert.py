"""``rps-infer convert``: convert a model, proving parity before writing."""

from __future__ import annotations

import argparse

from rps_infer.cli import args as common


def add_parser(sub) -> None:
    """Register the command."""
    p = sub.add_parser("convert", help="convert a model, proving parity before writing",
                       description="Convert SRC to another format. To ONNX: any PyTorch network (the project's "
                       ".pt, TorchScript, a torch.export .pt2, a state_dict with --torch-model), any Keras model "
                       "(.keras, .h5), a Go JSON MLP. To torch/keras/gojson: any file holding the RPS MLP (ONNX "
                       "included). The new file is compared with SRC at batch sizes 1, 3, 64 (or on --inputs) "
                       "and written only if it agrees.")
    p.add_argument("source", metavar="SRC", type=common.existing_path)
    p.add_argument("--to", required=True, choices=["onnx", "torch", "keras", "gojson"])
    p.add_argument("--out", type=common.writable_file, help="output path (default: SRC with the target's suffix)")
    p.add_argument("--exporter", choices=["dynamo", "legacy"],
                   help="PyTorch ONNX exporter (default: dynamo; legacy for TorchScript)")
    p.add_argument("--opset", type=int, help="ONNX opset (default: 18 from PyTorch, 17 from Keras); the dynamo "
                   "exporter writes 18-23, legacy 7-20, Keras 7-18; another is refused")
    p.add_argument("--kind", choices=["policy", "value"], help="override the kind detected from a Go JSON file")
    common.add_parity_batches(p)
    common.add_model_hints(p)
    common.add_inputs(p, outputs=False)


def run(args: argparse.Namespace) -> int:
    """Convert and print what was written."""
    from rps_infer.convert import convert

    result = convert(args.source, args.to, args.out, exporter=args.exporter, opset=args.opset, kind=args.kind,
                     batch_sizes=args.batch_sizes, hints=common.hints_of(args), inputs=common.inputs_of(args))
    print(f"wrote {result.path} (parity proven at batch sizes "
          f"{', '.join(map(str, result.report.results))}: max abs error {result.report.max_abs_error():.3g})")
    return 0
