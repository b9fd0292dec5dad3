"""SimCLR pre-training of weight-space encoders (Shamsian et al. ICML 2024, Sec. 5.4).

Every INR ``w_i`` of a batch of ``B`` gets two views ``a_i = t(w_i)`` and
``b_i = t'(w_i)`` from independent draws of an augmentation :class:`Pipeline`
(inside the jitted step). A backbone's invariant representation
``h = f(v)`` (its ``features`` method, ``(B, F)``) goes through a projection
head ``z = g(h)`` (SimCLR, Chen et al. 2020), and the NT-Xent loss pulls
``z(a_i)`` towards ``z(b_i)`` and away from the other ``2B - 2`` views. After
pre-training ``g`` is dropped and ``f``'s parameters initialise a classifier
(:func:`dwsjax.train.train_classifier` with ``init_params``), and
:func:`linear_probe_accuracy` measures how much class information the frozen
representation ``h`` holds.

Temperature: 0.1 by default. The augmentation paper does not state its value;
0.1 is SimCLR's choice for its large-batch runs and also works for small batches.
"""

from __future__ import annotations

import functools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from dwsjax.batching import batch_shardings, check_batch_size, on_host, padded_batches, shard
from dwsjax.checkpoints import resume_or_start, run_config
from dwsjax.checks import check_epochs, check_finite_split, normalisation_stats
from dwsjax.loop import fit_epochs
from dwsjax.store import InrBatch
from dwsjax.train import Augment, TrainConfig, TrainState, create_state
from dwsjax.weights import WeightSpace, WeightStats, batch_size, normalize

DEFAULT_TEMPERATURE = 0.1
SSL_AUGMENTATIONS = "translate,gaussian_noise,quantile_masking,siren_negation,mixup_aligned"


def _check_pairs(z_a: jax.Array, z_b: jax.Array) -> None:
    if z_a.ndim != 2 or z_a.shape != z_b.shape or z_a.shape[0] < 2:
        raise ValueError(f"contrastive pairs need two (B, D) arrays with B >= 2, got {z_a.shape} and {z_b.shape}")


def _similarities(z_a: jax.Array, z_b: jax.Array, temperature: float) -> tuple[jax.Array, jax.Array]:
    """Cosine similarities / temperature of all ``2B`` views, ``(2B, 2B)`` with the
    diagonal masked out, and the index of each view's positive ``(2B,)``."""
    _check_pairs(z_a, z_b)
    z = jnp.concatenate([z_a, z_b])
    z = z / jnp.maximum(jnp.linalg.norm(z, axis=-1, keepdims=True), 1e-8)
    n = z.shape[0]
    logits = jnp.where(jnp.eye(n, dtype=bool), -1e9, (z @ z.T) / temperature)
    return logits, (jnp.arange(n) + n // 2) % n


def nt_xent(z_a: jax.Array, z_b: jax.Array, temperature: float = DEFAULT_TEMPERATURE) -> jax.Array:
    """NT-Xent (SimCLR Eq. 1): rows ``i`` of ``z_a`` and ``z_b`` ``(B, D)`` are positives.

    ``mean_k -log( exp(s_{k,p(k)}/tau) / sum_{j != k} exp(s_{kj}/tau) )`` over all
    ``2B`` views ``k`` with positive ``p(k)`` and cosine similarity ``s``.
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    logits, positives = _similarities(z_a, z_b, temperature)
    log_probs = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(log_probs, positives[:, None], axis=-1))


def contrastive_accuracy(z_a: jax.Array, z_b: jax.Array) -> jax.Array:
    """Fraction of the ``2B`` views whose most similar other view is their positive."""
    logits, positives = _similarities(z_a, z_b, 1.0)
    return jnp.mean(jnp.argmax(logits, axis=-1) == positives)


class ProjectionHead(nn.Module):
    """SimCLR's ``g(h) = W_2 relu(W_1 h)``: ``(B, F) -> (B, out_dim)``."""

    hidden: int = 128
    out_dim: int = 64

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        return nn.Dense(self.out_dim, name="out")(nn.relu(nn.Dense(self.hidden, name="hidden")(h)))


class SimCLRModel(nn.Module):
    """``backbone.features`` then a :class:`ProjectionHead`: weight spaces ``(B, ...)`` -> ``(B, out_dim)``.

    Parameters: ``{"backbone": <the backbone's encoder params>, "projection": ...}``;
    the backbone's classification head is never called, so it has none.
    """

    backbone: nn.Module
    projection_hidden: int = 128
    projection_dim: int = 64

    @nn.compact
    def __call__(self, ws: WeightSpace, train: bool = False) -> jax.Array:
        h = self.backbone.features(ws, train)
        return ProjectionHead(self.projection_hidden, self.projection_dim, name="projection")(h)


def simclr_model(backbone: nn.Module, projection_hidden: int = 128, projection_dim: int = 64) -> SimCLRModel:
    """The SimCLR model of a backbone: ``z = g(f(ws))``, a projection head ``g`` on its features ``f``.

    Args:
        backbone: A classifier with a ``features(ws, train) -> (B, F)`` method (the ``dws`` model,
            :meth:`dwsjax.models.DWSClassifier.features`), built without BatchNorm.
        projection_hidden: Hidden width of the projection head.
        projection_dim: Output width of the projection head.

    Returns:
        The :class:`SimCLRModel`, weight spaces ``(B, ...)`` -> ``(B, projection_dim)``.

    Raises:
        ValueError: If ``backbone`` has no ``features`` method.
    """
    if not callable(getattr(backbone, "features", None)):
        raise ValueError(f"{type(backbone).__name__} has no features() method to pre-train; use the dws model")
    return SimCLRModel(backbone, projection_hidden, projection_dim)


def two_views(augment: Augment, key: jax.Array, ws: WeightSpace) -> WeightSpace:
    """Both views of every sample, ``(2B, ...)``: ``[t(w_1..w_B), t'(w_1..w_B)]``.

    One pipeline call on the batch stacked twice: every row draws its own
    augmentation, and MixUp partners come from all ``2B`` rows. The pipeline's
    labels are unused (dummy soft labels ``(2B, 1)``).
    """
    doubled = jax.tree.map(lambda x: jnp.concatenate([x, x]), ws)
    views, _ = augment(key, doubled, jnp.zeros((2 * batch_size(ws), 1), jnp.float32))
    return views


@functools.partial(jax.jit, static_argnames=("augment", "temperature"))
def contrastive_step(state: TrainState, ws, key, stats: WeightStats, augment: Augment, temperature: float):
    """One AdamW step on the NT-Xent loss of two augmented views: ``-> (state, loss, accuracy)``."""
    view_key, dropout_key = jax.random.split(key)
    inputs = normalize(two_views(augment, view_key, ws), stats)
    n = batch_size(ws)

    def loss_fn(params):
        z = state.apply_fn({"params": params}, inputs, train=True, rngs={"dropout": dropout_key})
        return nt_xent(z[:n], z[n:], temperature), z

    (loss, z), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    return state.apply_gradients(grads=grads), loss, contrastive_accuracy(z[:n], z[n:])


def pretrain_simclr(
    model: SimCLRModel,
    train: InrBatch,
    config: TrainConfig,
    augment: Augment,
    temperature: float = DEFAULT_TEMPERATURE,
    stats: WeightStats | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after_epochs: int | None = None,
) -> tuple[dict, dict]:
    """SimCLR pre-training (Shamsian et al. 2024, Sec. 5.4) on ``train.weights``; labels unused.

    Every step draws two views of each INR from ``augment`` and minimises NT-Xent
    (:func:`nt_xent`, SimCLR Eq. 1, Chen et al. 2020) of their projections ``z``:
    ``mean_k -log(exp(s_{k,p(k)} / tau) / sum_{j != k} exp(s_{kj} / tau))`` over all
    ``2B`` views ``k`` with positive ``p(k)`` (the other view of the same INR) and cosine similarity ``s``.
    One orbax checkpoint per epoch; ``resume`` continues the run in ``checkpoint_dir``
    and, like :func:`dwsjax.train.train_classifier`, gives the same result as an unbroken run.

    Args:
        model: The SimCLR model (:func:`simclr_model`).
        train: INRs to pre-train on.
        config: Optimiser recipe, epochs, seed (:class:`dwsjax.train.TrainConfig`).
        augment: The augmentation pipeline the views are drawn from (:func:`dwsjax.augment.build_pipeline`).
        temperature: NT-Xent temperature ``tau``.
        stats: Normalisation statistics (default: those of ``train``).
        checkpoint_dir: Write an orbax checkpoint there after every epoch (default: none).
        resume: Continue from the latest checkpoint in ``checkpoint_dir``.
        progress: Show a progress bar.
        stop_after_epochs: End after this many epochs of this call (tests).

    Returns:
        ``(params, history)``: the last epoch's ``{"backbone", "projection"}`` parameters
        (``params["backbone"]`` initialises a classifier through ``train_classifier(init_params=...)``)
        and a history with per-epoch ``loss``, ``contrastive_accuracy``, ``samples_per_s`` and
        ``epoch_seconds`` (:func:`dwsjax.loop.fit_epochs`).

    Raises:
        ValueError: If ``augment`` is ``None``, ``temperature <= 0``, the backbone has BatchNorm, the
            batch size does not suit the data or devices, ``train`` has non-finite weights, or
            ``checkpoint_dir`` holds another run.
    """
    if augment is None:
        raise ValueError("SimCLR needs an augmentation pipeline: without one both views are identical")
    sharding, replicated = batch_shardings()
    n = len(train.labels)
    check_batch_size(config.batch_size, n, sharding)
    check_epochs(config.epochs)
    check_finite_split("train", train)
    train = on_host(train)
    stats = normalisation_stats(train.weights, stats)
    state = create_state(model, train, config)
    if state.batch_stats:
        raise ValueError(
            "SimCLR pre-training here takes a backbone without BatchNorm (its running statistics "
            'are not carried to fine-tuning or representations); build it with normalization="none"'
        )
    checkpointer, arrays, history, start_epoch = resume_or_start(
        checkpoint_dir,
        resume,
        {"state": state},
        {"config": run_config(model, config, train, temperature=temperature), "epochs": []},
    )
    state = jax.device_put(arrays["state"], replicated)

    def step(state: TrainState, idx, key):
        ws = shard(jax.tree.map(lambda x: x[idx], train.weights), sharding)
        state, loss, accuracy = contrastive_step(state, ws, key, stats, augment, temperature)
        return state, {"loss": loss, "contrastive_accuracy": accuracy}

    state = fit_epochs(
        state,
        step,
        n,
        config,
        history,
        start_epoch=start_epoch,
        stop_after_epochs=stop_after_epochs,
        checkpointer=checkpointer,
        postfix={"loss": "loss", "pair_acc": "contrastive_accuracy"},
        progress=progress,
        desc="simclr",
    )
    return jax.device_get(state.params), history


def representations(
    backbone: nn.Module, params, weights: WeightSpace, stats: WeightStats, batch: int = 256
) -> np.ndarray:
    """``backbone.features`` of every INR, ``(N, F)``; ``params`` are the backbone's
    (e.g. ``pretrained["backbone"]``)."""
    sharding, _ = batch_shardings()
    features = jax.jit(lambda p, ws: backbone.apply({"params": p}, normalize(ws, stats), method="features"))
    weights = jax.tree.map(np.asarray, weights)
    n = batch_size(weights)
    chunks = []
    for idx, mask in padded_batches(n, batch, sharding):
        out = np.asarray(features(params, shard(jax.tree.map(lambda x: x[idx], weights), sharding)))
        chunks.append(out[mask > 0])
    return np.concatenate(chunks)


def linear_probe_accuracy(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    ridge: float = 1.0,
) -> float:
    """Test accuracy of a linear classifier on frozen representations ``(N, F)``.

    Least-squares classifier: features standardised with the training set's mean
    and std, ``W = argmin ||[X, 1] W - Y||^2 + ridge ||W||^2`` against one-hot labels
    ``Y`` (closed form, deterministic), prediction ``argmax_k ([x, 1] W)_k``.
    """
    train_features, test_features = np.asarray(train_features, np.float64), np.asarray(test_features, np.float64)
    if train_features.ndim != 2 or test_features.shape[1:] != train_features.shape[1:]:
        raise ValueError(
            f"probe features must be (N, F) with one F, got {train_features.shape} and {test_features.shape}"
        )
    if len(train_labels) != len(train_features) or len(test_labels) != len(test_features):
        raise ValueError(
            f"{len(train_labels)} / {len(test_labels)} labels for {len(train_features)} / "
            f"{len(test_features)} probe features"
        )
    mean, std = train_features.mean(axis=0), train_features.std(axis=0) + 1e-8

    def design(x):
        return np.concatenate([(x - mean) / std, np.ones((len(x), 1))], axis=1)

    x = design(train_features)
    targets = np.eye(int(max(train_labels.max(), test_labels.max())) + 1)[train_labels]
    w = np.linalg.solve(x.T @ x + ridge * np.eye(x.shape[1]), x.T @ targets)
    return float(np.mean(np.argmax(design(test_features) @ w, axis=1) == test_labels))
