"""Batched application, composition and a by-name registry of augmentations.

Single-network augmentations are ``(key, ws) -> ws`` and MixUp-style ones
``(key, ws_a, y_a, ws_b, y_b) -> (ws, y)``, all on ONE sample. A
:class:`Pipeline` applies a sequence of them to a batch
``(key, ws_batch, labels_batch) -> (ws_batch, labels_batch)``, each step to each
sample independently with its own probability; a MixUp step pairs every sample
with another one of the batch (a random permutation of the batch).
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from dwsjax.augment.data_agnostic import gaussian_noise, masking, quantile_masking
from dwsjax.augment.input_space import rotate, scale, translate
from dwsjax.augment.mixup import input_mixup, label_smoothing, mixup, mixup_aligned, mixup_permuted
from dwsjax.augment.permutation import permutation
from dwsjax.augment.symmetries import relu_scaling, siren_bias, siren_negation
from dwsjax.siren import SIREN_W0
from dwsjax.weights import WeightSpace, batch_size


def apply_to_batch(augmentation: Callable, key: jax.Array, ws: WeightSpace, *args) -> WeightSpace:
    """``augmentation(key_i, ws[i], *args)`` for every sample of a flat batch, independent keys."""
    keys = jax.random.split(key, batch_size(ws))
    return jax.vmap(lambda k, w: augmentation(k, w, *args))(keys, ws)


class Step(NamedTuple):
    augmentation: Callable
    prob: float = 1.0
    pairs: bool = False  # MixUp-style: takes and returns labels, needs a partner


def _select(mask: jax.Array, new, old):
    return jax.tree.map(lambda n, o: jnp.where(mask.reshape((-1,) + (1,) * (n.ndim - 1)), n, o), new, old)


def _apply_step(step: Step, key: jax.Array, ws: WeightSpace, labels: jax.Array):
    key_gate, key_pair, key_aug = jax.random.split(key, 3)
    n = batch_size(ws)
    keys = jax.random.split(key_aug, n)
    if step.pairs:
        partner = jax.random.permutation(key_pair, n)
        ws_b = jax.tree.map(lambda x: x[partner], ws)
        new_ws, new_labels = jax.vmap(step.augmentation)(keys, ws, labels, ws_b, labels[partner])
    else:
        new_ws, new_labels = jax.vmap(step.augmentation)(keys, ws), labels
    apply = jax.random.bernoulli(key_gate, step.prob, (n,))
    return _select(apply, new_ws, ws), _select(apply, new_labels, labels)


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """Steps applied in order, each to each sample with its own probability (jittable)."""

    steps: tuple[Step, ...]

    def __call__(self, key: jax.Array, ws: WeightSpace, labels: jax.Array):
        for step, k in zip(self.steps, jax.random.split(key, max(len(self.steps), 1))):
            ws, labels = _apply_step(step, k, ws, labels)
        return ws, labels


AUGMENTATIONS: dict[str, Callable] = {
    "translate": translate,
    "rotate": rotate,
    "scale": scale,
    "gaussian_noise": gaussian_noise,
    "masking": masking,
    "quantile_masking": quantile_masking,
    "siren_negation": siren_negation,
    "siren_bias": siren_bias,
    "relu_scaling": relu_scaling,
    "permutation": permutation,
}

PAIR_AUGMENTATIONS: dict[str, Callable] = {
    "mixup": mixup,
    "mixup_permuted": mixup_permuted,
    "mixup_aligned": mixup_aligned,
    "label_smoothing": label_smoothing,
    "input_mixup": input_mixup,
}

COMBINATION = ("translate", "gaussian_noise", "siren_negation", "mixup_aligned")


def make_step(name: str, prob: float = 1.0, w0: float = SIREN_W0, **options) -> Step:
    """The registered augmentation ``name``; ``w0`` reaches SIREN-specific ones,
    ``options`` override any hyperparameter the augmentation accepts."""
    table = {**AUGMENTATIONS, **PAIR_AUGMENTATIONS}
    if name not in table:
        raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(sorted(table) + ['combination'])}")
    fn = table[name]
    params = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in {"w0": w0, **options}.items() if k in params}
    return Step(functools.partial(fn, **kwargs) if kwargs else fn, prob, name in PAIR_AUGMENTATIONS)


def combination(prob: float = 1.0, w0: float = SIREN_W0) -> Pipeline:
    """The paper's combination: translate, Gaussian noise, SIREN negation, aligned MixUp."""
    return Pipeline(tuple(make_step(name, prob, w0) for name in COMBINATION))


def build_pipeline(spec: str | Sequence[str], prob: float = 1.0, w0: float = SIREN_W0) -> Pipeline:
    """``"translate,gaussian_noise:0.5,mixup_aligned"`` -> :class:`Pipeline`.

    ``name:p`` sets that step's probability (default ``prob``); ``combination``
    expands to :data:`COMBINATION`.
    """
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    steps = []
    for item in (n.strip() for n in names if n.strip()):
        name, _, p = item.partition(":")
        p = float(p) if p else prob
        steps += combination(p, w0).steps if name == "combination" else [make_step(name, p, w0)]
    return Pipeline(tuple(steps))
