"""A model behind a running server, as a backend: what ``verify --target`` compares.

Checking parity through the server (same inputs, same comparator, same report as a
file-to-file verify) catches what only the serving side can break: a batcher that
mixes rows, a codec that reorders a tensor, a server that loaded another file.
Two APIs: ``neural`` (the NeuralService: ``BatchPredict`` of a ``policy`` or
``value``) and ``v2`` (the Open Inference Protocol's ``ModelInfer``, any model).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from rps_infer.backends.base import Backend
from rps_infer.errors import RpsInferError
from rps_infer.tensors import Feeds, TensorSpec

APIS = ("neural", "v2")
_V2_TYPES = {"FP32": "float32", "FP64": "float64", "FP16": "float16", "INT64": "int64", "INT32": "int32",
             "INT8": "int8", "UINT8": "uint8", "BOOL": "bool"}
_NEURAL_OUTPUTS = {"policy": 9, "value": 1}


class RemoteBackend(Backend):
    """``model`` served at ``target`` (HOST:PORT, plaintext gRPC) through ``api``."""

    name = "remote"

    def __init__(self, target: str, model: str, api: str = "neural", *, timeout: float = 30.0) -> None:
        if api not in APIS:
            raise RpsInferError(f"unknown --api {api!r}; choose one of {', '.join(APIS)}")
        if api == "neural" and model not in _NEURAL_OUTPUTS:
            raise RpsInferError(f"the NeuralService serves 'policy' and 'value', not {model!r} (use --api v2)")
        super().__init__("cpu")
        self.target, self.model, self.api, self.timeout = target, model, api, timeout
        self.client = None

    def _activate_impl(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        import grpc

        from rps_infer.client import NeuralClient, V2Client

        self.client = (NeuralClient if self.api == "neural" else V2Client)(self.target, timeout=self.timeout)
        try:
            self.client.wait_ready(self.timeout)
            if self.api == "neural":
                self.client.model_info(self.model)
                return ((TensorSpec("input", "float32", (None, 81)),),
                        (TensorSpec("output", "float32", (None, _NEURAL_OUTPUTS[self.model])),))
            meta = self.client.metadata(self.model)
        except grpc.FutureTimeoutError:
            self.client.close()
            raise RpsInferError(f"no server answers at {self.target} within {self.timeout:g} s") from None
        except grpc.RpcError as exc:
            self.client.close()
            raise RpsInferError(f"{self.target}: model {self.model!r}: {exc.code().name}: {exc.details()}") from None

        def spec(t) -> TensorSpec:
            return TensorSpec(t.name, _V2_TYPES.get(t.datatype, t.datatype),
                              tuple(None if d < 0 else int(d) for d in t.shape))

        return tuple(spec(t) for t in meta.inputs), tuple(spec(t) for t in meta.outputs)

    def _infer_impl(self, feeds: Feeds) -> dict[str, np.ndarray]:
        if self.api == "neural":
            return {"output": self.client.batch_predict(self.model, feeds["input"])}
        return self.client.infer(self.model, dict(feeds))

    def _deactivate_impl(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _describe_impl(self) -> dict[str, Any]:
        return {"framework": f"gRPC {self.api} API", "target": self.target, "model": self.model}
