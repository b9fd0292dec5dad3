"""Build models by name with the papers' configurations as defaults.

* ``dws``: DWSNets classifier; 4 DWS layers, 32 channels (DWSNets MNIST INR
  experiments), ``max`` reduction, BatchNorm before each ReLU and set attention
  (8 heads) for the neuron-indexed terms as in the DWSNets reference code
  (``experiments/mnist/trainer.py`` defaults ``--add-bn``, ``--set-layer sab``).
  The augmentation paper (Shamsian et al. 2024) uses ``hidden=128``.
* ``gnn``: relational transformer on neural graphs; 4 layers, node dim 64, edge dim 32.
* ``mlp``: MLP on flattened weights, 3 hidden layers of 256.
* ``transformer``: per-neuron token transformer, 4 layers, dim 64.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import flax.linen as nn

from dwsjax.models.baselines import FlatMLP, NeuronTransformer
from dwsjax.models.dws import DWSClassifier
from dwsjax.models.gnn import GNNClassifier
from dwsjax.weights import MLPSpec

MODELS: dict[str, Callable[..., nn.Module]] = {
    "dws": DWSClassifier,
    "gnn": GNNClassifier,
    "mlp": FlatMLP,
    "transformer": NeuronTransformer,
}


def width_config(name: str, width: int | None) -> dict[str, Any]:
    """The config that sets a model's main width: DWS channels, GNN node dim,
    transformer dim, or every hidden layer of the flat MLP; ``{}`` for ``None``."""
    if width is None:
        return {}
    if width < 1:
        raise ValueError(f"a model width must be >= 1, got {width} (--hidden)")
    if name == "mlp":
        return {"hidden": (width,) * len(FlatMLP.hidden)}
    return {{"dws": "hidden", "gnn": "node_dim", "transformer": "dim"}[name]: width}


def depth_config(name: str, depth: int | None) -> dict[str, Any]:
    """The config that sets a model's number of layers (DWS layers, transformer blocks);
    ``{}`` for ``None``. The flat MLP's depth is its ``hidden`` tuple."""
    if depth is None:
        return {}
    if name == "mlp":
        raise ValueError("the flat MLP has no --depth; its layers are FlatMLP.hidden")
    if depth < 1:
        raise ValueError(f"a model depth must be >= 1, got {depth} (--depth)")
    return {"depth": depth}


def build_model(name: str, spec: MLPSpec, num_classes: int, **config: Any) -> nn.Module:
    """A weight-space classifier by name, with the papers' configurations as defaults.

    ``build_model("dws", mlp_spec(2, 32, 32, 1), 10, hidden=128)`` is the augmentation
    paper's DWSNet for 2-32-32-1 SIRENs and 10 classes.

    Args:
        name: A key of :data:`MODELS`: ``"dws"`` (:class:`dwsjax.models.DWSClassifier`), ``"gnn"``
            (:class:`dwsjax.models.GNNClassifier`), ``"mlp"`` (:class:`dwsjax.models.FlatMLP`) or
            ``"transformer"`` (:class:`dwsjax.models.NeuronTransformer`).
        spec: Architecture of the weight spaces to classify.
        num_classes: Number of classes.
        **config: Fields of the model class that override its defaults (e.g. ``hidden``, ``depth``,
            ``dropout``).

    Returns:
        The Flax module; ``model.init(key, ws)`` and ``model.apply(variables, ws)`` map weight
        spaces with batch shape ``(B,)`` to logits ``(B, num_classes)``.

    Raises:
        ValueError: If ``name`` is not a model.
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name](spec=spec, num_classes=num_classes, **config)
