"""Write the KServe CRDs' validation schemas that tests/test_deploy.py checks deploy/kserve against.

Run from a KServe checkout's ``config/crd/full/`` files (deploy/README.md names the release)::

    python deploy/kserve/schema/extract.py KSERVE/config/crd/full/serving.kserve.io_clusterservingruntimes.yaml \
        KSERVE/config/crd/full/serving.kserve.io_inferenceservices.yaml

Kept per CRD: the served storage version's ``openAPIV3Schema`` with its group, version and
kind. Dropped, to keep the repository lean: every ``description`` (no effect on validation),
``status`` (the controller's), and an InferenceService's ``explainer`` and ``transformer``
(unused here; they become objects that are not checked).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
UNCHECKED = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
PRUNED_SPEC = {"InferenceService": ("explainer", "transformer")}


def without_descriptions(node):
    """``node`` with every ``description`` key removed, recursively."""
    if isinstance(node, dict):
        return {k: without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [without_descriptions(v) for v in node]
    return node


def extract(crd: dict) -> dict:
    """``{group, version, kind, schema}`` of the CRD's storage version, pruned as the module says."""
    kind = crd["spec"]["names"]["kind"]
    version = next(v for v in crd["spec"]["versions"] if v.get("storage"))
    schema = without_descriptions(version["schema"]["openAPIV3Schema"])
    schema["properties"].pop("status", None)
    for name in PRUNED_SPEC.get(kind, ()):
        schema["properties"]["spec"]["properties"][name] = dict(UNCHECKED)
    return {"group": crd["spec"]["group"], "version": version["name"], "kind": kind, "schema": schema}


def main(paths: list[str]) -> None:
    """Write ``<kind>-<version>.json`` beside this script for each CRD file in ``paths``."""
    for path in paths:
        entry = extract(yaml.safe_load(Path(path).read_text()))
        out = HERE / f"{entry['kind'].lower()}-{entry['version']}.json"
        # Compact: the pretty form of the InferenceService schema is 1.3 MB, this 0.5 MB.
        out.write_text(json.dumps(entry, sort_keys=True, separators=(",", ":")) + "\n")
        print(f"{path} -> {out.name}")


if __name__ == "__main__":
    main(sys.argv[1:])
