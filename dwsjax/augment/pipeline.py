"""Batched application, composition and a by-name registry of augmentations.

Single-network augmentations are ``(key, ws) -> ws`` and MixUp-style ones
``(key, ws_a, y_a, ws_b, y_b) -> (ws, y)``, all on ONE sample. A
:class:`Pipeline` applies a sequence of them to a batch
``(key, ws_batch, labels_batch) -> (ws_batch, labels_batch)``, each step to each
sample independently with its own probability; a MixUp step pairs every sample
with another one of the batch (a random permutation of the batch).

Activation symmetries preserve the function only for one activation (SIREN
negation and SIREN bias for sine, ReLU scaling for ReLU): building a step for
INRs of the other activation is refused, and warned about when the activation
is not known (``activation=None``). The check happens when the pipeline is
built, so the pipeline itself stays jittable.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp

from dwsjax.augment.data_agnostic import gaussian_noise, masking, quantile_masking
from dwsjax.augment.input_space import rotate, scale, translate
from dwsjax.augment.mixup import (
    input_mixup,
    label_smoothing,
    mixup,
    mixup_aligned,
    mixup_permuted,
    mixup_prealigned,
)
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


def _apply_step(step: Step, key: jax.Array, ws: WeightSpace, labels: jax.Array, partners=None):
    key_gate, key_pair, key_aug = jax.random.split(key, 3)
    n = batch_size(ws)
    keys = jax.random.split(key_aug, n)
    if step.pairs:
        if partners is None:
            partner = jax.random.permutation(key_pair, n)
            partners = jax.tree.map(lambda x: x[partner], ws), labels[partner]
        new_ws, new_labels = jax.vmap(step.augmentation)(keys, ws, labels, *partners)
    else:
        new_ws, new_labels = jax.vmap(step.augmentation)(keys, ws), labels
    apply = jax.random.bernoulli(key_gate, step.prob, (n,))
    return _select(apply, new_ws, ws), _select(apply, new_labels, labels)


@dataclasses.dataclass(frozen=True)
class Pipeline:
    """Steps applied in order, each to each sample with its own probability (jittable).

    Build it with :func:`build_pipeline`. A pipeline is a frozen dataclass, so it
    can be a static argument of ``jax.jit`` (as in :func:`dwsjax.train.train_step`).

    Attributes:
        steps: The :class:`Step` s, applied in order.
    """

    steps: tuple[Step, ...]

    def __call__(self, key: jax.Array, ws: WeightSpace, labels: jax.Array, partners=None):
        """Augment a batch.

        Each step applies to each sample independently with the step's probability
        (its own key per sample); a MixUp step pairs sample ``i`` with row ``i`` of
        ``partners`` or, without them, with the sample at a random permutation of the batch.

        Args:
            key: PRNG key.
            ws: Weight spaces with batch shape ``(B,)``.
            labels: ``(B, K)`` one-hot or soft labels.
            partners: ``(ws_b (B, ...), labels_b (B, K))``: the MixUp partners, as drawn from a pool
                of INRs (:func:`dwsjax.batching.partner_indices`); ``None``: the batch's own samples.

        Returns:
            ``(ws, labels)`` of the same shapes, augmented.
        """
        for step, k in zip(self.steps, jax.random.split(key, max(len(self.steps), 1))):
            ws, labels = _apply_step(step, k, ws, labels, partners)
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
"""Single-network augmentations by name, each ``(key, ws, **hyperparameters) -> ws``."""

PAIR_AUGMENTATIONS: dict[str, Callable] = {
    "mixup": mixup,
    "mixup_permuted": mixup_permuted,
    "mixup_aligned": mixup_aligned,
    "mixup_prealigned": mixup_prealigned,
    "label_smoothing": label_smoothing,
    "input_mixup": input_mixup,
}

COMBINATION = ("translate", "gaussian_noise", "siren_negation", "mixup_aligned")
# The same with template-aligned MixUp; SIREN negation comes after the MixUp, as random sign flips
# before it would undo the template alignment of the two INRs (the pairwise matching above redoes it).
COMBINATION_PREALIGNED = ("translate", "gaussian_noise", "mixup_prealigned", "siren_negation")
PRESETS = {"combination": COMBINATION, "combination_prealigned": COMBINATION_PREALIGNED}
# Augmentations whose INRs must be aligned to a template first (dwsjax.template_store).
NEEDS_TEMPLATE = ("mixup_prealigned",)

ACTIVATIONS = {"sine": "sine (SIREN)", "relu": "ReLU"}
PRESERVES_FUNCTION_ONLY_FOR = {"siren_negation": "sine", "siren_bias": "sine", "relu_scaling": "relu"}


def check_activation(name: str, activation: str | None) -> None:
    """Refuse an activation symmetry on INRs of another activation; warn when ``activation`` is ``None``
    (unknown). ``activation`` is ``"sine"``, ``"relu"`` or ``None``."""
    if activation is not None and activation not in ACTIVATIONS:
        raise ValueError(f"unknown INR activation {activation!r}; use one of {sorted(ACTIVATIONS)} or None")
    needs = PRESERVES_FUNCTION_ONLY_FOR.get(name)
    if needs is None or needs == activation:
        return
    only = f"{name} preserves the function only for {ACTIVATIONS[needs]} INRs"
    if activation is None:
        warnings.warn(
            f"{only}; the INRs' activation is unknown (activation=None), and on INRs of another "
            f"activation it changes the function",
            stacklevel=3,
        )
        return
    suited = sorted(n for n, a in PRESERVES_FUNCTION_ONLY_FOR.items() if a == activation)
    raise ValueError(
        f"{only}, but these INRs use {ACTIVATIONS[activation]} activations, where it changes the function. "
        f"Remove {name} from the augmentations ({ACTIVATIONS[activation]} INRs have {', '.join(suited)}), or "
        f"pass activation=None to apply it anyway"
    )


def make_step(name: str, prob: float = 1.0, w0: float = SIREN_W0, activation: str | None = "sine", **options) -> Step:
    """The registered augmentation ``name`` for INRs with ``activation`` (see :func:`check_activation`);
    ``w0`` reaches SIREN-specific ones, ``options`` override any hyperparameter the augmentation accepts
    (those it does not accept are ignored, e.g. ``solver`` reaches only ``mixup_aligned``)."""
    table = {**AUGMENTATIONS, **PAIR_AUGMENTATIONS}
    if name not in table:
        raise ValueError(f"unknown augmentation {name!r}; known: {', '.join(sorted(table) + sorted(PRESETS))}")
    check_activation(name, activation)
    fn = table[name]
    params = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in {"w0": w0, **options}.items() if k in params}
    return Step(functools.partial(fn, **kwargs) if kwargs else fn, prob, name in PAIR_AUGMENTATIONS)


def combination(prob: float = 1.0, w0: float = SIREN_W0, activation: str | None = "sine", **options) -> Pipeline:
    """The paper's combination: translate, Gaussian noise, SIREN negation, aligned MixUp (SIRENs only)."""
    return Pipeline(tuple(make_step(name, prob, w0, activation, **options) for name in COMBINATION))


def step_names(spec: str | Sequence[str]) -> list[tuple[str, str]]:
    """``"translate,combination:0.5"`` -> ``[(name, probability text), ...]`` with presets
    (:data:`PRESETS`) expanded; the text is empty where no ``:p`` was given."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    steps = []
    for item in (n.strip() for n in names if n.strip()):
        name, _, p = item.partition(":")
        steps += [(member, p) for member in PRESETS[name]] if name in PRESETS else [(name, p)]
    return steps


def spec_label(spec: str) -> str:
    """``"siren_negation,mixup_aligned"`` -> ``"siren_negation+mixup_aligned"``: a pipeline as one
    token, for run names and for lists of pipelines written with ``,`` (inverse: :func:`spec_of_label`)."""
    return spec.replace(",", "+")


def spec_of_label(label: str) -> str:
    """The pipeline spec of a :func:`spec_label` token."""
    return label.replace("+", ",")


def mixes_pairs(spec: str | Sequence[str]) -> bool:
    """Whether the pipeline ``spec`` has a MixUp-style step (:data:`PAIR_AUGMENTATIONS`), one that takes partners."""
    return any(name in PAIR_AUGMENTATIONS for name, _ in step_names(spec))


def needs_template(spec: str | Sequence[str]) -> bool:
    """Whether the pipeline ``spec`` mixes template-aligned INRs (:data:`NEEDS_TEMPLATE`)."""
    return any(name in NEEDS_TEMPLATE for name, _ in step_names(spec))


def build_pipeline(
    spec: str | Sequence[str],
    prob: float = 1.0,
    w0: float = SIREN_W0,
    activation: str | None = "sine",
    **options,
) -> Pipeline:
    """``"translate,gaussian_noise:0.5,mixup_aligned"`` -> :class:`Pipeline` for INRs with
    ``activation`` (``"sine"``: SIRENs, ``"relu"``, or ``None``: unknown; see :func:`check_activation`).

    ``name:p`` sets that step's probability (default ``prob``); a preset name
    (``combination``, ``combination_prealigned``) expands to its steps
    (:data:`PRESETS`); ``options`` reach every step that accepts them (:func:`make_step`).

    Args:
        spec: Comma-separated names of :data:`AUGMENTATIONS`, :data:`PAIR_AUGMENTATIONS` and
            :data:`PRESETS`, each optionally ``name:p``; or a sequence of such names.
        prob: Probability of every step without ``:p``.
        w0: The SIRENs' frequency factor, for the SIREN-specific augmentations.
        activation: The INRs' activation: activation symmetries of another one are refused.
        **options: Hyperparameters of the augmentations (e.g. ``scale=0.1``, ``solver="jax"``);
            a step ignores those it does not accept.

    Returns:
        The :class:`Pipeline`, ``(key, ws (B, ...), labels (B, K)) -> (ws, labels)``.

    Raises:
        ValueError: If a name is unknown, or an activation symmetry does not suit ``activation``.
    """
    return Pipeline(
        tuple(make_step(name, float(p) if p else prob, w0, activation, **options) for name, p in step_names(spec))
    )
