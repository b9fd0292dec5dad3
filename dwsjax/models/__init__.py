"""Models for weight spaces: DWSNets, a neural-graph relational transformer, baselines."""

from dwsjax.models.baselines import FlatMLP, NeuronTransformer, neuron_tokens
from dwsjax.models.dws import DWSClassifier, DWSEncoder, DWSLayer, DWSWeightModel, invariant_pool
from dwsjax.models.gnn import GNNClassifier, RelationalAttention
from dwsjax.models.graph import NeuralGraph, neural_graph
from dwsjax.models.registry import MODELS, build_model, depth_config, width_config
from dwsjax.models.summary import model_param_counts, param_count, summary
from dwsjax.models.symmetry import from_tensors, to_tensors, weight_space_slots

__all__ = [
    "DWSClassifier",
    "DWSEncoder",
    "DWSLayer",
    "DWSWeightModel",
    "FlatMLP",
    "GNNClassifier",
    "MODELS",
    "NeuralGraph",
    "NeuronTransformer",
    "RelationalAttention",
    "build_model",
    "depth_config",
    "width_config",
    "from_tensors",
    "invariant_pool",
    "model_param_counts",
    "neural_graph",
    "neuron_tokens",
    "param_count",
    "summary",
    "to_tensors",
    "weight_space_slots",
]
