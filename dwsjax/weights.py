"""Weight spaces of MLPs as pytrees.

An MLP with widths ``(d_0, d_1, ..., d_L)`` has ``L`` layers. Layer ``i`` maps
``d_i -> d_{i+1}`` with weight ``W_i`` of shape ``(..., d_i, d_{i+1})`` and bias
``b_i`` of shape ``(..., d_{i+1})``, so that ``h_{i+1} = h_i @ W_i + b_i``.
Leading ``...`` dimensions are batch dimensions shared by every leaf
(objects, views, devices, ...). Hidden neurons (widths ``d_1 .. d_{L-1}``) can be
permuted without changing the function: this is the symmetry that DWSNets and
weight matching are built around.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np


class MLPSpec(NamedTuple):
    """Architecture of an MLP: its layer widths, input first, output last.

    Build it with :func:`mlp_spec`, which checks the widths.

    Attributes:
        widths: ``(d_0, d_1, ..., d_L)``; layer ``i`` maps ``d_i -> d_{i+1}``.
    """

    widths: tuple[int, ...]

    @property
    def num_layers(self) -> int:
        return len(self.widths) - 1

    @property
    def layer_shapes(self) -> tuple[tuple[int, int], ...]:
        return tuple(zip(self.widths[:-1], self.widths[1:]))

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        return self.widths[1:-1]

    @property
    def num_params(self) -> int:
        return sum(i * o + o for i, o in self.layer_shapes)

    def __str__(self) -> str:
        return "-".join(str(w) for w in self.widths)


def mlp_spec(*widths: int) -> MLPSpec:
    """Checked constructor for :class:`MLPSpec`: ``mlp_spec(2, 32, 32, 1)`` is a 2-32-32-1 MLP.

    Args:
        *widths: Layer widths ``d_0, ..., d_L``, input first, output last.

    Returns:
        The :class:`MLPSpec` with ``L = len(widths) - 1`` layers.

    Raises:
        ValueError: If there are fewer than two widths or a width is below 1.
    """
    widths = tuple(int(w) for w in widths)
    if len(widths) < 2 or any(w < 1 for w in widths):
        raise ValueError(f"an MLP spec needs at least an input and an output width, all >= 1; got {widths}")
    return MLPSpec(widths)


class WeightSpace(NamedTuple):
    """Weights ``(..., d_in, d_out)`` and biases ``(..., d_out)``, one per layer: a pytree.

    Layer ``i`` computes ``h_{i+1} = h_i @ W_i + b_i``; leading ``...`` dimensions
    are batch dimensions shared by every leaf, so ``jax.tree.map`` and ``jax.vmap``
    work on whole networks. Weights are stored ``(d_in, d_out)``: transpose
    PyTorch's ``(d_out, d_in)`` ones.

    Attributes:
        weights: ``(W_0, ..., W_{L-1})``, ``W_i`` of shape ``(..., d_i, d_{i+1})``.
        biases: ``(b_0, ..., b_{L-1})``, ``b_i`` of shape ``(..., d_{i+1})``.
    """

    weights: tuple[jax.Array, ...]
    biases: tuple[jax.Array, ...]

    @property
    def spec(self) -> MLPSpec:
        return spec_of(self)

    @property
    def batch_shape(self) -> tuple[int, ...]:
        return tuple(self.biases[0].shape[:-1])


def spec_of(ws: WeightSpace) -> MLPSpec:
    """The architecture a weight space has (checked for consistency)."""
    if len(ws.weights) == 0 or len(ws.weights) != len(ws.biases):
        raise ValueError(
            f"a weight space needs one bias per weight and at least one layer; got "
            f"{len(ws.weights)} weights and {len(ws.biases)} biases"
        )
    widths = (ws.weights[0].shape[-2],) + tuple(w.shape[-1] for w in ws.weights)
    spec = MLPSpec(widths)
    check_weight_space(ws, spec)
    return spec


def check_weight_space(ws: WeightSpace, spec: MLPSpec) -> tuple[int, ...]:
    """Raise a ``ValueError`` naming the first layer whose shape does not fit ``spec``.

    Returns the batch shape shared by all leaves.
    """
    if len(ws.weights) != spec.num_layers or len(ws.biases) != spec.num_layers:
        raise ValueError(
            f"architecture mismatch: spec {spec} has {spec.num_layers} layers but the weight "
            f"space has {len(ws.weights)} weights and {len(ws.biases)} biases"
        )
    batch = tuple(ws.biases[0].shape[:-1])
    for i, ((d_in, d_out), w, b) in enumerate(zip(spec.layer_shapes, ws.weights, ws.biases)):
        if tuple(w.shape) != batch + (d_in, d_out) or tuple(b.shape) != batch + (d_out,):
            raise ValueError(
                f"architecture mismatch at layer {i}: spec {spec} expects weight "
                f"{batch + (d_in, d_out)} and bias {batch + (d_out,)} (batch shape {batch}), "
                f"got weight {tuple(w.shape)} and bias {tuple(b.shape)}. Weights are stored "
                f"(..., d_in, d_out); transpose PyTorch (d_out, d_in) weights first."
            )
    return batch


def flatten_weights(ws: WeightSpace) -> jax.Array:
    """Concatenate ``[W_0, b_0, W_1, b_1, ...]`` (each row-major) into one vector per network.

    Args:
        ws: Weight spaces with batch shape ``(...)``.

    Returns:
        ``(..., num_params)``, the layout of INR store shards; :func:`unflatten_weights` inverts it.
    """
    batch = ws.batch_shape
    parts = []
    for w, b in zip(ws.weights, ws.biases):
        parts += [w.reshape(batch + (-1,)), b]
    return jnp.concatenate(parts, axis=-1)


def unflatten_weights(flat: jax.Array, spec: MLPSpec) -> WeightSpace:
    """Inverse of :func:`flatten_weights`.

    Args:
        flat: ``(..., num_params)`` vectors laid out ``[W_0, b_0, W_1, b_1, ...]``.
        spec: The architecture, ``spec.num_params == flat.shape[-1]``.

    Returns:
        The :class:`WeightSpace` with batch shape ``flat.shape[:-1]``.

    Raises:
        ValueError: If the last axis does not hold ``spec.num_params`` entries.
    """
    if flat.shape[-1] != spec.num_params:
        raise ValueError(
            f"a flat vector for spec {spec} needs {spec.num_params} entries in its last "
            f"axis, got shape {tuple(flat.shape)}"
        )
    batch = flat.shape[:-1]
    weights, biases, start = [], [], 0
    for d_in, d_out in spec.layer_shapes:
        weights.append(flat[..., start : start + d_in * d_out].reshape(batch + (d_in, d_out)))
        start += d_in * d_out
        biases.append(flat[..., start : start + d_out])
        start += d_out
    return WeightSpace(tuple(weights), tuple(biases))


def check_finite(ws: WeightSpace, what: str = "weight space") -> None:
    """Raise if any entry is NaN or infinite (host-side check, not for jit)."""
    for kind, leaves in (("weight", ws.weights), ("bias", ws.biases)):
        for i, leaf in enumerate(leaves):
            bad = int(np.size(leaf) - np.isfinite(np.asarray(leaf)).sum())
            if bad:
                raise ValueError(
                    f"{what}: {kind} of layer {i} has {bad} NaN/inf entries; the source "
                    f"(a diverged fit or a corrupt file) must be refitted or removed"
                )


def finite_rows(ws: WeightSpace) -> np.ndarray:
    """Boolean mask ``(n,)`` of the samples of a flat batch ``(n,)`` whose every weight and
    bias is finite (host-side; ``select(data, finite_rows(data.weights))`` drops the others)."""
    n = batch_size(ws)
    finite = np.ones(n, bool)
    for leaf in jax.tree.leaves(ws):
        leaf = np.asarray(leaf)
        finite &= np.isfinite(leaf).all(axis=tuple(range(1, leaf.ndim)))
    return finite


class WeightStats(NamedTuple):
    """Mean and std of a dataset of weight spaces, each shaped like one sample.

    ``per="layer"`` broadcasts one scalar per layer and leaf; ``per="entry"`` keeps
    one value per weight entry (as DWSNets normalises its INR datasets).

    Attributes:
        mean: Weight space without batch dimensions.
        std: Weight space without batch dimensions, ``eps`` added.
    """

    mean: WeightSpace
    std: WeightSpace


def weight_stats(ws: WeightSpace, per: str = "layer", eps: float = 1e-8) -> WeightStats:
    """Mean and standard deviation of a dataset of weight spaces, for :func:`normalize`.

    Args:
        ws: Weight spaces with batch shape ``(...)``; statistics are over all batch dimensions.
        per: ``"layer"``: one mean and std per weight matrix and bias vector (over its entries
            and the batch), broadcast to the leaf's shape; ``"entry"``: one per weight entry
            (over the batch only), as DWSNets normalises its INR datasets.
        eps: Added to every std.

    Returns:
        :class:`WeightStats` whose ``mean`` and ``std`` are weight spaces shaped like one sample.

    Raises:
        ValueError: If ``per`` is not ``"layer"`` or ``"entry"``.
    """
    if per not in ("layer", "entry"):
        raise ValueError(f'per must be "layer" or "entry", got {per!r}')
    nbatch = len(ws.batch_shape)

    def moment(leaf, fn):
        if per == "entry":
            return fn(leaf, axis=tuple(range(nbatch)))
        return jnp.full(leaf.shape[nbatch:], fn(leaf), leaf.dtype)

    mean = jax.tree.map(lambda leaf: moment(leaf, jnp.mean), ws)
    std = jax.tree.map(lambda leaf: moment(leaf, jnp.std) + eps, ws)
    return WeightStats(mean, std)


def normalize(ws: WeightSpace, stats: WeightStats) -> WeightSpace:
    """Standardise weight spaces: ``(w - mean) / std`` leaf by leaf.

    Args:
        ws: Weight spaces with any batch shape.
        stats: Statistics of the training set (:func:`weight_stats`), shaped like one sample.

    Returns:
        Weight spaces of ``ws``'s shapes; the statistics broadcast over batch dimensions.
    """
    return jax.tree.map(lambda w, m, s: (w - m) / s, ws, stats.mean, stats.std)


def denormalize(ws: WeightSpace, stats: WeightStats) -> WeightSpace:
    """Inverse of :func:`normalize`: ``w * std + mean`` leaf by leaf.

    Args:
        ws: Normalised weight spaces with any batch shape.
        stats: The statistics they were normalised with.

    Returns:
        Weight spaces in the original scale, of ``ws``'s shapes.
    """
    return jax.tree.map(lambda w, m, s: w * s + m, ws, stats.mean, stats.std)


def stats_to_arrays(stats: WeightStats) -> dict[str, np.ndarray]:
    """Flat ``{name: array}`` for ``np.savez``; read back with :func:`stats_from_arrays`."""
    return {
        "mean": np.asarray(flatten_weights(stats.mean)),
        "std": np.asarray(flatten_weights(stats.std)),
    }


def stats_from_arrays(arrays: dict[str, np.ndarray], spec: MLPSpec) -> WeightStats:
    return WeightStats(
        unflatten_weights(jnp.asarray(arrays["mean"]), spec),
        unflatten_weights(jnp.asarray(arrays["std"]), spec),
    )


def stack(samples: list[WeightSpace]) -> WeightSpace:
    """Stack weight spaces of one architecture along a new leading batch axis."""
    specs = {spec_of(s) for s in samples}
    if len(specs) != 1:
        raise ValueError(f"cannot stack weight spaces of different architectures: {sorted(map(str, specs))}")
    return jax.tree.map(lambda *xs: jnp.stack(xs), *samples)


def batch_size(ws: WeightSpace) -> int:
    """Number of samples: the product of the batch shape."""
    return math.prod(ws.batch_shape)
