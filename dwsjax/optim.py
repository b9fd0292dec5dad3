"""Training recipes (optimiser, schedule, clipping, dropout) as data, built with optax.

A :class:`TrainRecipe` states what a paper's reference code trains a model
with; :data:`MODEL_RECIPES` names each model's default. Sources:

* ``dwsnets`` (DWS): AdamW with AMSGrad, lr 5e-3, weight decay 5e-4, no warmup
  or clipping: DWSNets ``experiments/mnist/trainer.py`` (lr 5e-3,
  ``optim=adamw`` with ``amsgrad=True, weight_decay=5e-4``); the augmentation
  paper (Shamsian et al. 2024, App. D) trains DWS with lr 5e-3. The batch is 64,
  not the trainer's 512 (set for ~45,000 INRs, too few steps per epoch on a few
  thousand INRs; see ``docs/recipes.md``).
* ``neural-graphs`` (relational transformer): AdamW with AMSGrad, lr 1e-3,
  weight decay 5e-4, 1,000-step linear warmup then constant, gradient clipping
  at global norm 10, dropout 0.2, batch 128: neural-graphs
  ``experiments/inr_classification/configs/base.yaml`` and
  ``scripts/fmnist_cls_rt.sh``; the augmentation paper's appendix (lr 1e-3,
  1,000 warmup steps).
* ``dws-augmentations`` (DWS as the augmentation paper's released code trains it,
  Shamsian et al. 2024, ``experiments/inr_classification/trainer.py`` defaults):
  PyTorch's ``Adam`` with ``weight_decay=5e-4`` (an L2 term added to the
  gradient, not decoupled), lr 1e-3, batch 256, the 1,000-step linear warmup
  then constant (``--use-lr-schedule true``), and the best-validation epoch
  taken as the latest on ties (``val_acc >= best_val_acc``). Its default is
  200 epochs; the paper's appendix says AdamW, lr 5e-3 and 300 epochs for
  Fashion-MNIST and CIFAR-10 instead (``dwsnets`` is that optimiser).
* ``constant``: AdamW, lr 1e-3, weight decay 5e-4, batch 64, nothing else
  (the default of the flat MLP and the neuron transformer baselines).

Both reference classification trainers (DWSNets' and the augmentation
paper's) keep the latest of equally good validation epochs (``>=``); the
recipes named after them other than ``dws-augmentations`` keep the earliest,
as every result in ``results/`` was selected (``ties``).

AMSGrad is PyTorch's (:func:`scale_by_pytorch_amsgrad`), the one both
reference trainers call; optax's ``scale_by_amsgrad`` differs in its first
~1,000 steps (see there).

Schedules follow the reference's ``WarmupLRScheduler``: step ``t`` (from 0)
uses ``lr * min(1, (t + 1) / warmup)``; ``decay="cosine"`` then decays to 0
at the last step.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

DECAYS = ("constant", "cosine")


class TrainRecipe(NamedTuple):
    """How a model is optimised: AdamW (or PyTorch's AMSGrad) with a warmup/decay schedule.

    Attributes:
        learning_rate: Peak learning rate, reached after ``warmup_steps``.
        weight_decay: Weight decay: decoupled and scaled by the scheduled learning rate (as PyTorch's
            AdamW), or an L2 term when ``decoupled_weight_decay`` is off.
        batch_size: Training batch size.
        warmup_steps: Linear warmup: step ``t`` (from 0) uses ``lr * min(1, (t + 1) / warmup_steps)``.
        decay: ``"constant"`` or ``"cosine"`` (to 0 at the last step; :func:`learning_rate_schedule`).
        clip_norm: Clip gradients to this global norm first; ``0``: no clipping.
        amsgrad: Use PyTorch's AMSGrad (:func:`scale_by_pytorch_amsgrad`) instead of Adam.
        dropout: The model's dropout rate; pass it on with ``build_model(..., dropout=recipe.dropout)``
            (the experiment scripts do; the optimiser does not use it).
        decoupled_weight_decay: ``False``: PyTorch's ``Adam(weight_decay=wd)``, which adds ``wd * w``
            to the gradient before Adam's moments (an L2 penalty ``wd / 2 |w|^2``).
        ties: The best-validation epoch among equally accurate ones: ``"earliest"`` or ``"latest"``.
    """

    learning_rate: float
    weight_decay: float = 5e-4
    batch_size: int = 64
    warmup_steps: int = 0
    decay: str = "constant"
    clip_norm: float = 0.0
    amsgrad: bool = False
    dropout: float = 0.0
    decoupled_weight_decay: bool = True
    ties: str = "earliest"


TIES = ("earliest", "latest")

TRAIN_RECIPES: dict[str, TrainRecipe] = {
    "dwsnets": TrainRecipe(learning_rate=5e-3, batch_size=64, amsgrad=True),
    "neural-graphs": TrainRecipe(
        learning_rate=1e-3, batch_size=128, warmup_steps=1000, clip_norm=10.0, amsgrad=True, dropout=0.2
    ),
    "dws-augmentations": TrainRecipe(
        learning_rate=1e-3, batch_size=256, warmup_steps=1000, decoupled_weight_decay=False, ties="latest"
    ),
    "constant": TrainRecipe(learning_rate=1e-3),
}
"""Training recipes by name (sources: :mod:`dwsjax.optim`)."""
MODEL_RECIPES = {"dws": "dwsnets", "gnn": "neural-graphs", "mlp": "constant", "transformer": "constant"}


def train_recipe(name: str) -> TrainRecipe:
    """The training recipe ``name``.

    Args:
        name: A key of :data:`TRAIN_RECIPES`: ``"dwsnets"``, ``"neural-graphs"``, ``"dws-augmentations"``
            or ``"constant"``.

    Returns:
        The :class:`TrainRecipe`; ``TrainConfig(recipe, epochs=...)`` (:class:`dwsjax.train.TrainConfig`)
        trains with it, and ``recipe._replace(learning_rate=...)`` overrides a field.

    Raises:
        ValueError: If ``name`` is not a training recipe.
    """
    if name not in TRAIN_RECIPES:
        raise ValueError(f"unknown training recipe {name!r}; choose one of {sorted(TRAIN_RECIPES)}")
    return TRAIN_RECIPES[name]


def learning_rate_schedule(
    learning_rate: float, warmup_steps: int = 0, decay: str = "constant", total_steps: int | None = None
) -> optax.Schedule:
    """``t -> lr * min(1, (t + 1) / warmup)``, times ``(1 + cos(pi p)) / 2`` with
    ``p = (t - warmup) / (total - warmup)`` clipped to ``[0, 1]`` for ``decay="cosine"``."""
    if decay not in DECAYS:
        raise ValueError(f"decay must be one of {DECAYS}, got {decay!r} (--decay)")
    if decay == "cosine" and not total_steps:
        raise ValueError("a cosine decay needs the run's total number of steps")
    if warmup_steps < 0:
        raise ValueError(f"warmup steps must be >= 0, got {warmup_steps} (--warmup-steps)")

    def schedule(step):
        warm = jnp.minimum(1.0, (step + 1) / max(warmup_steps, 1))
        if decay == "constant":
            return learning_rate * warm
        progress = jnp.clip((step - warmup_steps) / max(total_steps - warmup_steps, 1), 0.0, 1.0)
        return learning_rate * warm * 0.5 * (1 + jnp.cos(jnp.pi * progress))

    return schedule


class PyTorchAmsgradState(NamedTuple):
    count: jax.Array
    mu: optax.Updates
    nu: optax.Updates
    nu_max: optax.Updates


def scale_by_pytorch_amsgrad(b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8) -> optax.GradientTransformation:
    """AMSGrad as ``torch.optim.AdamW(amsgrad=True)`` computes it (Reddi et al. 2018):

        m_t = b1 m + (1 - b1) g,   v_t = b2 v + (1 - b2) g^2,   vmax_t = max(vmax, v_t)
        u_t = (m_t / (1 - b1^t)) / (sqrt(vmax_t) / sqrt(1 - b2^t) + eps)

    The maximum is taken over the raw second moment and bias-corrected after.
    ``optax.scale_by_amsgrad`` takes it over the bias-corrected moment instead,
    so its first steps' single-batch estimates ``g_1^2, ...`` stay in the
    denominator: when the first gradients are the largest (as at a transformer's
    initialisation), every step for the next ~``1 / (1 - b2)`` steps shrinks.
    """

    def init(params: optax.Params) -> PyTorchAmsgradState:
        return PyTorchAmsgradState(jnp.zeros([], jnp.int32), *(optax.tree.zeros_like(params) for _ in range(3)))

    def update(updates, state: PyTorchAmsgradState, params=None):
        del params
        count = state.count + 1
        mu = jax.tree.map(lambda g, m: b1 * m + (1 - b1) * g, updates, state.mu)
        nu = jax.tree.map(lambda g, v: b2 * v + (1 - b2) * g * g, updates, state.nu)
        nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
        first, second = 1 - b1**count, jnp.sqrt(1 - b2**count)
        steps = jax.tree.map(lambda m, v: (m / first) / (jnp.sqrt(v) / second + eps), mu, nu_max)
        return steps, PyTorchAmsgradState(count, mu, nu, nu_max)

    return optax.GradientTransformation(init, update)


@functools.cache
def optimizer(
    learning_rate: float,
    weight_decay: float,
    warmup_steps: int = 0,
    decay: str = "constant",
    total_steps: int | None = None,
    clip_norm: float = 0.0,
    amsgrad: bool = False,
    decoupled_weight_decay: bool = True,
) -> optax.GradientTransformation:
    """AdamW (decoupled weight decay scaled by the scheduled lr, as PyTorch's), with
    PyTorch's AMSGrad (:func:`scale_by_pytorch_amsgrad`) if ``amsgrad``, after clipping
    gradients to global norm ``clip_norm`` if ``> 0``; with ``decoupled_weight_decay=False``
    PyTorch's Adam with an L2 term instead: ``g + weight_decay * w`` enters Adam's moments.

    Cached: the optimiser is a static field of the train state, so equal settings
    reuse compiled steps.
    """
    if clip_norm < 0:
        raise ValueError(f"clip norm must be >= 0 (0 = no clipping), got {clip_norm} (--clip-norm)")
    schedule = learning_rate_schedule(learning_rate, warmup_steps, decay, total_steps)
    decay_weights = optax.add_decayed_weights(weight_decay)
    return optax.chain(
        *([optax.clip_by_global_norm(clip_norm)] if clip_norm else []),
        *([] if decoupled_weight_decay else [decay_weights]),
        scale_by_pytorch_amsgrad() if amsgrad else optax.scale_by_adam(),
        *([decay_weights] if decoupled_weight_decay else []),
        optax.scale_by_learning_rate(schedule),
    )
