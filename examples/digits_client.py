"""Ask classifiers served by rps-infer for the label and score of a few handwritten digits.

Uses NVIDIA's own Open Inference Protocol client (``tritonclient.grpc``), nothing from
rps_infer but the fixed test split. Start the server first::

    rps-infer models build digits
    rps-infer serve --model-repository models/build

then ``python examples/digits_client.py [--url 127.0.0.1:50053] [--count 5]``. Prints one
line per digit and model: ``MODEL digit I: true T predicted P score S``.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

from rps_infer.nets.digits import split

MODELS = ("digits-logreg", "digits-rf", "digits-xgb")


def classify(client: grpcclient.InferenceServerClient, model: str, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels [N] and the probability of each label [N] for ``images`` float32 [N, 64]."""
    image_input = grpcclient.InferInput("input", list(images.shape), "FP32")
    image_input.set_data_from_numpy(images)
    wanted = [grpcclient.InferRequestedOutput("label"), grpcclient.InferRequestedOutput("probabilities")]
    result = client.infer(model, [image_input], outputs=wanted)
    labels, probabilities = result.as_numpy("label"), result.as_numpy("probabilities")
    return labels, probabilities[np.arange(len(labels)), labels]


def main(argv: list[str] | None = None) -> int:
    """Print true label, predicted label and score for the first ``--count`` test digits."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="127.0.0.1:50053", help="HOST:PORT of rps-infer serve")
    parser.add_argument("--count", type=int, default=5, help="how many test digits (default 5)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated model names")
    args = parser.parse_args(argv)
    _, x_test, _, y_test = split()
    images, truth = x_test[:args.count], y_test[:args.count]
    client = grpcclient.InferenceServerClient(url=args.url)
    try:
        for model in args.models.split(","):
            if not client.is_model_ready(model):
                print(f"{model} is not ready on {args.url}", file=sys.stderr)
                return 1
            labels, scores = classify(client, model, images)
            for i, (true, label, score) in enumerate(zip(truth, labels, scores, strict=True)):
                print(f"{model} digit {i}: true {true} predicted {label} score {score:.3f}")
    except InferenceServerException as exc:
        print(f"request failed: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
