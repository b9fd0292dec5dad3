"""Parameter counts of models."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from dwsjax.models.probes import raw_kwargs
from dwsjax.weights import MLPSpec, WeightSpace


def param_count(params) -> int:
    """Number of scalars in a parameter pytree."""
    return sum(int(x.size) for x in jax.tree.leaves(params))


def example_weight_space(spec: MLPSpec, batch: int = 1) -> WeightSpace:
    """Zeros of shape ``(batch, ...)`` for shape inference."""
    return WeightSpace(
        tuple(jnp.zeros((batch, i, o)) for i, o in spec.layer_shapes),
        tuple(jnp.zeros((batch, o)) for _, o in spec.layer_shapes),
    )


def model_param_counts(model) -> dict[str, int]:
    """Parameter count per top-level submodule and ``"total"`` (shape inference only, no FLOPs)."""
    example = example_weight_space(model.spec)
    variables = jax.eval_shape(functools.partial(model.init, **raw_kwargs(model, example)), jax.random.key(0), example)
    params = variables["params"]
    counts = {name: param_count(sub) for name, sub in params.items()}
    return counts | {"total": sum(counts.values())}


def summary(model) -> str:
    """Printable table of :func:`model_param_counts`."""
    counts = model_param_counts(model)
    width = max(len(n) for n in counts)
    lines = [f"{type(model).__name__} on {model.spec}"]
    lines += [f"  {name:<{width}}  {count:>10,}" for name, count in counts.items()]
    return "\n".join(lines)
