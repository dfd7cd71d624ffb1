"""Check deploy/ offline: ``python deploy/validate.py [FILE.yaml ...]``.

- deploy/kubernetes: kubernetes-validate against the newest Kubernetes it ships, strict (an
  unknown field is an error, as with the API server's strict field validation); where
  kubectl is installed, the Deployment also goes through kubectl's own API types, offline;
- deploy/kserve: the KServe CRDs' openAPIV3Schema kept in deploy/kserve/schema (see
  extract.py there), made strict the same way, with jsonschema; a serving runtime also needs
  its startup, liveness and readiness probes on the HTTP port and ``--model-name={{.Name}}``;
- deploy/Containerfile: read into stages and instructions (tests/test_deploy.py checks them).

Prints each problem and exits 1 when there is one. tests/test_deploy.py uses these functions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import yaml

HERE = Path(__file__).resolve().parent
SCHEMAS = HERE / "kserve" / "schema"
CONTAINERFILE = HERE / "Containerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)``: continuation lines joined, comments dropped."""
    found, current = [], ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        word, _, rest = (current + line).partition(" ")
        found.append((word.upper(), rest.strip()))
        current = ""
    return found


def stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions by stage name (``FROM base AS name``), in file order."""
    named: dict[str, list[tuple[str, str]]] = {}
    for word, rest in instructions(CONTAINERFILE.read_text()):
        if word == "FROM":
            named[rest.split()[-1]] = []
        elif named:
            named[next(reversed(named))].append((word, rest))
    return named


def last(stage: list[tuple[str, str]], word: str) -> str | None:
    """The arguments of the stage's last ``word`` instruction (the one in force)."""
    values = [rest for w, rest in stage if w == word]
    return values[-1] if values else None


def image_command(stage: str = "cpu") -> list[str]:
    """ENTRYPOINT + CMD of a final stage: what the container runs without arguments."""
    named = stages()[stage]
    return json.loads(last(named, "ENTRYPOINT")) + json.loads(last(named, "CMD"))


def documents(path: Path) -> list[dict]:
    """The YAML documents of a manifest file (empty ones dropped)."""
    return [d for d in yaml.safe_load_all(Path(path).read_text()) if d]


def kubernetes_problems(path: Path) -> list[str]:
    """What kubernetes-validate finds in ``path`` (strict, newest Kubernetes it ships); a kind
    it has no schema for is a problem too."""
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    problems = []
    for doc in documents(path):
        try:
            kubernetes_validate.validate(doc, latest_version(), strict=True)
        except kubernetes_validate.ValidationError as exc:
            problems.append(f"{doc['kind']} {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(exc.message)
    return problems


def strict(schema):
    """A CRD schema with the API server's strict field validation: an object schema that lists
    its properties accepts no others (unless it preserves unknown fields)."""
    if isinstance(schema, list):
        return [strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: (v if k == "enum" else strict(v)) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


def crd_schemas(folder: Path = SCHEMAS) -> dict[str, dict]:
    """The kept CRD schemas, made strict, by ``"<group>/<version> <Kind>"``."""
    schemas = {}
    for path in sorted(folder.glob("*.json")):
        entry = json.loads(path.read_text())
        schemas[f"{entry['group']}/{entry['version']} {entry['kind']}"] = strict(entry["schema"])
    return schemas


def kserve_problems(path: Path, schemas: dict[str, dict]) -> list[str]:
    """Where the documents of ``path`` break their CRD's schema (or have none kept)."""
    problems = []
    for doc in documents(path):
        schema = schemas.get(f"{doc['apiVersion']} {doc['kind']}")
        if schema is None:
            problems.append(f"no CRD schema kept for {doc['apiVersion']} {doc['kind']}")
            continue
        # OpenAPI 3.0 schema objects are JSON Schema draft 4 plus keywords jsonschema ignores.
        for error in jsonschema.Draft4Validator(schema).iter_errors(doc):
            problems.append(f"{doc['kind']} {'.'.join(map(str, error.path))}: {error.message}")
        if doc["kind"] in ("ServingRuntime", "ClusterServingRuntime"):
            problems += runtime_problems(doc)
    return problems


# What each probe of a runtime's container asks, on its --http-port. Startup asks live, not
# ready: a model refused at load keeps the server not ready for good, and a restart loop would
# not change that (deploy/kserve/servingruntime.yaml).
RUNTIME_PROBES = {"startupProbe": "/v2/health/live", "livenessProbe": "/v2/health/live",
                  "readinessProbe": "/v2/health/ready"}
MODEL_NAME_ARG = "--model-name={{.Name}}"  # KServe substitutes the InferenceService's name


def runtime_problems(doc: dict) -> list[str]:
    """What a KServe serving runtime's containers miss beyond their schema: the three probes on
    the HTTP port, the InferenceService's name as --model-name, and a liveness budget longer
    than the drain (--grace), so a draining server is not restarted."""
    problems = []
    for container in doc["spec"]["containers"]:
        where = f"{doc['kind']} {container['name']}"
        args = dict(a.split("=", 1) for a in container.get("args", []) if "=" in a)
        port = int(args.get("--http-port", 0)) or None
        for probe, path in RUNTIME_PROBES.items():
            get = (container.get(probe) or {}).get("httpGet")
            if get != {"path": path, "port": port}:
                problems.append(f"{where}: {probe} should be httpGet {path} on --http-port {port}, not {get}")
        if MODEL_NAME_ARG not in container.get("args", []):
            problems.append(f"{where}: args lack {MODEL_NAME_ARG} (the InferenceService's name for a single model)")
        live = container.get("livenessProbe") or {}
        budget = live.get("periodSeconds", 10) * live.get("failureThreshold", 3)
        if budget <= float(args.get("--grace", 10)):
            problems.append(f"{where}: livenessProbe gives up after {budget} s, within the --grace drain")
    return problems


def kubectl_problems(path: Path) -> list[str]:
    """kubectl's typed decoding of a pod-template kind, offline (``set env --local`` asks no
    cluster): a wrong type fails to decode; a field the API types lack is missing from the
    round trip. Checks the first document of ``path``."""
    env = {**os.environ, "KUBECONFIG": os.devnull}
    run = subprocess.run(["kubectl", "set", "env", "--local", "-f", str(path), "RPS_PROBE=1", "-o", "json"],
                         capture_output=True, text=True, timeout=60, env=env)
    if run.returncode != 0:
        return [run.stderr.strip()]
    return [f"dropped {p}" for p in sorted(key_paths(documents(path)[0]) - key_paths(json.loads(run.stdout)))]


def key_paths(node, prefix: str = "") -> set[str]:
    """Every key path of a YAML tree (list items by position)."""
    if isinstance(node, dict):
        return set().union(*(key_paths(v, f"{prefix}.{k}") for k, v in node.items())) | {prefix}
    if isinstance(node, list):
        return set().union(*(key_paths(v, f"{prefix}[{i}]") for i, v in enumerate(node))) | {prefix}
    return {prefix}


def problems(path: Path, schemas: dict[str, dict]) -> list[str]:
    """KServe's schemas for its API group, kubernetes-validate for everything else."""
    if any(d.get("apiVersion", "").startswith("serving.kserve.io/") for d in documents(path)):
        return kserve_problems(path, schemas)
    found = kubernetes_problems(path)
    if shutil.which("kubectl") and documents(path)[0]["kind"] == "Deployment":
        found += [f"kubectl: {p}" for p in kubectl_problems(path)]
    return found


def main(paths: list[str]) -> int:
    """Validate ``paths`` (default: every manifest under deploy/kubernetes and deploy/kserve)."""
    files = [Path(p) for p in paths] or sorted([*HERE.glob("kubernetes/*.yaml"), *HERE.glob("kserve/*.yaml")])
    schemas = crd_schemas()
    found = 0
    for path in files:
        for problem in problems(path, schemas):
            print(f"{path}: {problem}")
            found += 1
    print(f"{len(files)} files, {found} problems")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
