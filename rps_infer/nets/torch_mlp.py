"""The RPS MLP as a PyTorch module. Importing this module imports torch."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from rps_infer.nets.mlp import Kind, MLPWeights


class TorchMLP(nn.Module):
    """Linear -> ReLU -> Linear -> softmax (policy) or sigmoid (value), float32."""

    def __init__(self, kind: Kind, input_size: int, hidden_size: int, output_size: int) -> None:
        super().__init__()
        self.kind = kind
        self.hidden = nn.Linear(input_size, hidden_size)
        self.out = nn.Linear(hidden_size, output_size)

    def io_specs(self):
        """(input specs, output specs) as rps_infer TensorSpecs; batch is dynamic."""
        from rps_infer.tensors import TensorSpec

        return ((TensorSpec("input", "float32", (None, self.hidden.in_features)),),
                (TensorSpec("output", "float32", (None, self.out.out_features)),))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Probabilities [B, outputs] for a policy, values [B, 1] for a value net."""
        logits = self.out(torch.relu(self.hidden(x)))
        if self.kind == "value":
            return torch.sigmoid(logits)
        return torch.softmax(logits, dim=-1)


def build(weights: MLPWeights) -> TorchMLP:
    """A :class:`TorchMLP` in eval mode holding ``weights`` (cast to float32)."""
    module = TorchMLP(weights.kind, weights.input_size, weights.hidden_size, weights.output_size)
    state = {k: torch.from_numpy(v) for k, v in weights.torch_state().items()}
    module.load_state_dict(state)
    return module.eval()


def weights_of(module: TorchMLP) -> MLPWeights:
    """The weights a :class:`TorchMLP` holds, as float64 :class:`MLPWeights`."""
    state = {k: v.detach().cpu().numpy().astype(np.float64) for k, v in module.state_dict().items()}
    return MLPWeights.from_torch_state(module.kind, state)
