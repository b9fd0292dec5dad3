"""Supervised training of weight-space classifiers: jitted steps, evaluation, best epoch.

One epoch = one pass over the shuffled training INRs in batches
(:func:`dwsjax.loop.fit_epochs`); every training batch is augmented inside the
jitted step (``augment(key, ws, y) -> (ws, y)`` with soft labels ``y``),
normalised with the training set's statistics, and fed to the model with
softmax cross-entropy and the run's optimiser (:mod:`dwsjax.optim`: AdamW or
AMSGrad, warmup, decay, clipping). After each epoch the model is evaluated on
validation and test sets and the epoch with the best validation accuracy is
kept (as in the paper). Checkpoints and resume: :mod:`dwsjax.checkpoints`;
batches split over the local devices: :mod:`dwsjax.batching`; input checks:
:mod:`dwsjax.checks`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax.training import train_state

from dwsjax.batching import batch_shardings, check_batch_size, on_host, padded_batches, partner_indices, shard
from dwsjax.checkpoints import resume_or_start, run_config
from dwsjax.checks import check_epochs, check_finite_split, check_labels, normalisation_stats
from dwsjax.loop import fit_epochs
from dwsjax.matching import check_same_spec
from dwsjax.models.probes import raw_kwargs, reads_raw_weights
from dwsjax.optim import TIES, TrainRecipe, optimizer
from dwsjax.store import InrBatch, InrStore
from dwsjax.weights import WeightStats, normalize

Augment = Callable[[jax.Array, object, jax.Array], tuple[object, jax.Array]]


class TrainConfig(NamedTuple):
    """One run's training settings: the optimiser recipe (:class:`dwsjax.optim.TrainRecipe`,
    with the batch size), the number of epochs, the seed and the evaluation batch size.

    Attributes:
        recipe: Optimiser, schedule, clipping and batch size (:func:`dwsjax.optim.train_recipe`).
        epochs: Passes over the training INRs.
        seed: Seed of the initialisation, the batch order, the augmentations and dropout.
        eval_batch_size: Batch size of evaluation.
    """

    recipe: TrainRecipe = TrainRecipe(learning_rate=1e-3)
    epochs: int = 10
    seed: int = 0
    eval_batch_size: int = 256

    @property
    def batch_size(self) -> int:
        return self.recipe.batch_size


class TrainState(train_state.TrainState):
    """Parameters, optimiser state, dropout key and the model's ``batch_stats``
    (BatchNorm running averages; ``{}`` for a model without BatchNorm);
    ``reads_raw_weights``: the model also takes the unnormalised INRs (probe features)."""

    dropout_key: jax.Array
    batch_stats: dict = flax.struct.field(default_factory=dict)
    reads_raw_weights: bool = flax.struct.field(pytree_node=False, default=False)

    def variables(self, params=None) -> dict:
        """``{"params": params or self.params}`` plus ``batch_stats`` if the model has any."""
        params = self.params if params is None else params
        return {"params": params, **({"batch_stats": self.batch_stats} if self.batch_stats else {})}


class Metrics(NamedTuple):
    loss: float
    accuracy: float


def soft_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean of ``-sum_c y_c log softmax(logits)_c`` over the batch; ``labels`` ``(B, C)``."""
    return jnp.mean(optax.softmax_cross_entropy(logits, labels))


def config_optimizer(config: TrainConfig, total_steps: int) -> optax.GradientTransformation:
    """The run's optimiser (:func:`dwsjax.optim.optimizer`); ``total_steps`` matters for cosine decay only."""
    r = config.recipe
    return optimizer(
        r.learning_rate,
        r.weight_decay,
        r.warmup_steps,
        r.decay,
        total_steps if r.decay != "constant" else None,
        r.clip_norm,
        r.amsgrad,
        r.decoupled_weight_decay,
    )


def create_state(model: nn.Module, example: InrBatch, config: TrainConfig) -> TrainState:
    """Fresh parameters and optimiser state; a cosine decay lasts ``epochs`` epochs of full
    batches of ``example``."""
    init_key, dropout_key = jax.random.split(jax.random.key(config.seed))
    sample = jax.tree.map(lambda x: x[:1], example.weights)
    variables = model.init(
        {"params": init_key, "dropout": dropout_key}, sample, train=False, **raw_kwargs(model, sample)
    )
    tx = config_optimizer(config, config.epochs * max(len(example.labels) // config.batch_size, 1))
    return TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        tx=tx,
        dropout_key=dropout_key,
        batch_stats=variables.get("batch_stats", {}),
        reads_raw_weights=reads_raw_weights(model),
    )


def model_inputs(state: TrainState, ws, stats: WeightStats) -> tuple[tuple, dict]:
    """``(args, kwargs)`` of the model for a batch ``ws``: the normalised weights, and the
    raw ones as ``raw=`` for a model with probe features."""
    return (normalize(ws, stats),), ({"raw": ws} if state.reads_raw_weights else {})


@functools.partial(jax.jit, static_argnames=("num_classes", "augment"))
def train_step(
    state: TrainState,
    ws,
    labels,
    key,
    stats: WeightStats,
    num_classes: int,
    augment: Augment | None,
    partners: tuple | None = None,
):
    """One optimiser step on an augmented, normalised batch: ``-> (state, loss, accuracy)``;
    ``partners = (ws_b, labels_b)`` are the MixUp partners of the batch's samples (default: the batch's own)."""
    aug_key, dropout_key = jax.random.split(key)
    targets = jax.nn.one_hot(labels, num_classes)
    if augment is not None:
        pairs = None if partners is None else (partners[0], jax.nn.one_hot(partners[1], num_classes))
        ws, targets = augment(aug_key, ws, targets, pairs)
    inputs = model_inputs(state, ws, stats)

    def loss_fn(params):
        logits, batch_stats = apply_train(state, params, inputs, dropout_key)
        return soft_cross_entropy(logits, targets), (logits, batch_stats)

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(targets, -1))
    return state.apply_gradients(grads=grads).replace(batch_stats=batch_stats), loss, accuracy


def apply_train(state: TrainState, params, inputs, dropout_key):
    """``(outputs, batch_stats)`` of the model in training mode; BatchNorm statistics are
    the batch's and the running averages are updated (returned unchanged without BatchNorm).
    ``inputs`` is the ``(args, kwargs)`` pair of :func:`model_inputs`, not a bare weight space."""
    (args, kwargs), rngs = inputs, {"dropout": dropout_key}
    if not state.batch_stats:
        return state.apply_fn({"params": params}, *args, train=True, rngs=rngs, **kwargs), state.batch_stats
    out, updates = state.apply_fn(
        state.variables(params), *args, train=True, rngs=rngs, mutable=["batch_stats"], **kwargs
    )
    return out, updates["batch_stats"]


@functools.partial(jax.jit, static_argnames=("num_classes",))
def eval_step(state: TrainState, ws, labels, mask, stats: WeightStats, num_classes: int):
    """Sum of cross-entropy losses and number of correct predictions over unmasked rows."""
    args, kwargs = model_inputs(state, ws, stats)
    logits = state.apply_fn(state.variables(), *args, train=False, **kwargs)
    losses = optax.softmax_cross_entropy(logits, jax.nn.one_hot(labels, num_classes))
    correct = jnp.argmax(logits, -1) == labels
    return jnp.sum(losses * mask), jnp.sum(correct * mask)


def overlay_params(params, pretrained, path: str = "params"):
    """``params`` with every subtree that ``pretrained`` holds replaced by it.

    E.g. a pre-trained ``{"encoder": ...}`` over a fresh classifier's
    ``{"encoder", "head_hidden", "head_out"}`` keeps the fresh head. Every key of
    ``pretrained`` must exist in ``params`` with the same shapes.
    """
    if not isinstance(pretrained, dict):
        if not isinstance(params, dict) and jnp.shape(params) == jnp.shape(pretrained):
            return jnp.asarray(pretrained, dtype=jnp.result_type(params))
        raise ValueError(
            f"pre-trained {path} has shape {jax.tree.map(jnp.shape, pretrained)}, the model "
            f"needs {jax.tree.map(jnp.shape, params)}"
        )
    if not isinstance(params, dict):
        raise ValueError(f"pre-trained {path} is a subtree but the model has an array there")
    unknown = sorted(set(pretrained) - set(params))
    if unknown:
        raise ValueError(f"pre-trained {path} has {unknown} that the model lacks (it has {sorted(params)})")
    return {k: overlay_params(v, pretrained[k], f"{path}/{k}") if k in pretrained else v for k, v in params.items()}


def evaluate(
    state: TrainState, data: InrBatch, stats: WeightStats, num_classes: int, batch_size: int, sharding
) -> Metrics:
    """Loss and accuracy over all of ``data``; the last batch is padded and masked."""
    n = len(data.labels)
    total_loss, total_correct = 0.0, 0.0
    for idx, mask in padded_batches(n, batch_size, sharding):
        ws = jax.tree.map(lambda x: x[idx], data.weights)
        loss, correct = eval_step(state, *shard((ws, data.labels[idx], mask), sharding), stats, num_classes)
        total_loss += float(loss)
        total_correct += float(correct)
    return Metrics(total_loss / n, total_correct / n)


def evaluate_store(
    state: TrainState,
    store: InrStore,
    stats: WeightStats,
    num_classes: int,
    batch_size: int = 256,
    views: int | None = None,
) -> Metrics:
    """Loss and accuracy over the INRs of ``store.load(views)``, read shard by shard: memory holds one
    shard, so stores larger than memory evaluate, and the result is :func:`evaluate`'s on the whole store.

    Args:
        state: A trained state (e.g. the best-validation parameters of :func:`train_classifier`).
        store: The INR store to evaluate on.
        stats: The normalisation statistics the model was trained with.
        num_classes: Classes of the model's output.
        batch_size: Evaluation batch size (rounded up to a multiple of the device count).
        views: Evaluate the first ``views`` views of every object (default: all).

    Returns:
        :class:`Metrics`: mean loss and accuracy over the store's INRs (failed fits left out).
    """
    sharding, replicated = batch_shardings()
    state = jax.device_put(state, replicated)
    n, loss, correct = 0, 0.0, 0.0
    for batch in store.shard_batches(views):
        k = len(batch.labels)
        if k:
            metrics = evaluate(state, batch, stats, num_classes, batch_size, sharding)
            n, loss, correct = n + k, loss + metrics.loss * k, correct + metrics.accuracy * k
    if not n:
        raise ValueError(f"the INR store at {store.root} holds no INRs to evaluate")
    return Metrics(loss / n, correct / n)


def best_arrays(state: TrainState, best: TrainState) -> dict:
    """What a checkpoint holds: the state, and the best-validation epoch's parameters and
    BatchNorm statistics (``best_batch_stats`` only for a model with BatchNorm)."""
    arrays = {"state": state, "best_params": best.params}
    return arrays | ({"best_batch_stats": best.batch_stats} if best.batch_stats else {})


class BestValidation:
    """Per-epoch evaluation on the validation and test sets that keeps the epoch of best
    validation accuracy as ``best``: on ties the earliest, or the latest with ``ties="latest"``."""

    def __init__(
        self,
        best: TrainState,
        measure: Callable[[TrainState, InrBatch], Metrics],
        val: InrBatch,
        test: InrBatch,
        ties: str = "earliest",
    ):
        if ties not in TIES:
            raise ValueError(f"ties must be one of {TIES}, got {ties!r}")
        self.best, self.measure, self.val, self.test, self.ties = best, measure, val, test, ties

    def better(self, accuracy: float, best: float) -> bool:
        """Whether a validation ``accuracy`` makes its epoch the best so far."""
        return accuracy >= best if self.ties == "latest" else accuracy > best

    def __call__(self, state: TrainState, epoch: int, history: dict) -> dict:
        """Evaluate ``state``; a better validation accuracy than ``history["best_val_accuracy"]``
        (or an equal one, ``ties="latest"``) makes ``epoch`` the best (``history``'s ``best_*`` entries).
        Returns the record's metrics."""
        val, test = self.measure(state, self.val), self.measure(state, self.test)
        if self.better(val.accuracy, history["best_val_accuracy"]):
            history.update(best_epoch=epoch, best_val_accuracy=val.accuracy, best_test_accuracy=test.accuracy)
            self.best = state
        return {
            "val_loss": val.loss,
            "val_accuracy": val.accuracy,
            "test_loss": test.loss,
            "test_accuracy": test.accuracy,
        }

    def arrays(self, state: TrainState) -> dict:
        """The checkpoint of ``state`` (:func:`best_arrays`)."""
        return best_arrays(state, self.best)

    def best_state(self, state: TrainState) -> TrainState:
        """``state`` with the best epoch's parameters and BatchNorm statistics."""
        return state.replace(params=self.best.params, batch_stats=self.best.batch_stats)


def train_classifier(
    model: nn.Module,
    train: InrBatch,
    val: InrBatch,
    test: InrBatch,
    num_classes: int,
    config: TrainConfig,
    augment: Augment | None = None,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = False,
    progress: bool = True,
    stop_after_epochs: int | None = None,
    final_eval: dict[str, InrBatch] | None = None,
    init_params=None,
    stats: WeightStats | None = None,
    facts: dict | None = None,
    partners: InrBatch | None = None,
) -> dict:
    """Train, select the best-validation epoch, and return the history and final metrics.

    ``history["epochs"]`` holds one record per epoch: training, validation and test
    loss and accuracy, ``train_samples_per_s`` and ``epoch_seconds`` (the epoch's
    wall time, training plus evaluation); resumed runs keep the earlier records.

    ``stop_after_epochs`` ends the run early after that many epochs of this call
    (to simulate a killed job in tests); ``resume`` continues from the latest
    checkpoint in ``checkpoint_dir``. Each set in ``final_eval`` is evaluated once
    with the best-validation parameters after training, as
    ``history["final_eval"][name] = {"loss", "accuracy"}``. ``init_params`` (e.g. a
    pre-trained ``{"encoder": ...}``) replaces the matching subtrees of the fresh
    parameters (:func:`overlay_params`); ``stats`` overrides the normalisation
    statistics (default: those of ``train``). ``history["config"]`` is the run's
    :func:`run_config` with ``facts`` (JSON values the caller knows, e.g. the
    augmentation); resuming a checkpoint whose configuration differs is refused.

    Each step minimises the softmax cross-entropy ``-sum_c y_c log softmax(f(normalize(t(w))))_c``
    of the augmented batch ``(t(w), y) = augment(key, w, onehot(labels))``.

    Args:
        model: A classifier module, ``(ws (B, ...), train) -> logits (B, num_classes)``
            (:func:`dwsjax.models.build_model`).
        train: Training INRs.
        val: Validation INRs: the best epoch is the one of highest validation accuracy.
        test: Test INRs, evaluated after every epoch.
        num_classes: Number of classes; labels lie in ``[0, num_classes)``.
        config: Optimiser recipe, epochs, seed.
        augment: A batch augmentation ``(key, ws, y) -> (ws, y)`` with soft labels ``y`` ``(B, K)``,
            e.g. a :class:`dwsjax.augment.Pipeline`; ``None``: none.
        checkpoint_dir: Write an orbax checkpoint there after every epoch (default: none).
        resume: Continue from the latest checkpoint in ``checkpoint_dir``.
        progress: Show a progress bar.
        stop_after_epochs: End after this many epochs of this call (tests).
        final_eval: Named INR sets evaluated once with the best parameters.
        init_params: Subtrees that replace the fresh parameters (e.g. a pre-trained encoder).
        stats: Normalisation statistics (default: :func:`dwsjax.weights.weight_stats` of ``train``).
        facts: JSON values recorded in ``history["config"]``.
        partners: The MixUp partner pool: every sample of a batch is mixed with an INR drawn
            uniformly from it (:func:`dwsjax.batching.partner_indices`), e.g. every fitted view of the
            training objects; ``None``: with another sample of the batch.

    Returns:
        The history: ``epochs`` (per-epoch records), ``best_epoch``, ``best_val_accuracy``,
        ``best_test_accuracy``, ``final_eval``, ``config`` and ``completed``.

    Raises:
        ValueError: If ``epochs`` is out of range, a split has non-finite weights or labels
            outside ``[0, num_classes)``, the batch size does not suit the data or the devices,
            ``checkpoint_dir`` holds another run, or ``init_params`` do not fit the model.
    """
    check_epochs(config.epochs)
    pool = {} if partners is None else {"partners": partners}
    for name, data in {"train": train, "val": val, "test": test, **pool, **(final_eval or {})}.items():
        check_finite_split(name, data)
        check_labels(name, data.labels, num_classes)
    if partners is not None:
        check_same_spec(train.weights, partners.weights, "the MixUp partner pool")
    sharding, replicated = batch_shardings()
    check_batch_size(config.batch_size, len(train.labels), sharding)
    train, val, test = on_host(train), on_host(val), on_host(test)
    partners = None if partners is None else on_host(partners)
    stats = normalisation_stats(train.weights, stats)
    state = create_state(model, train, config)
    if init_params is not None:
        state = state.replace(params=overlay_params(state.params, init_params))
    history: dict = {
        "config": run_config(model, config, train, **(facts or {})),
        "epochs": [],
        "best_epoch": None,
        "best_val_accuracy": -1.0,
    }
    checkpointer, arrays, history, start_epoch = resume_or_start(
        checkpoint_dir, resume, best_arrays(state, state), history
    )
    state = jax.device_put(arrays["state"], replicated)

    def measure(state: TrainState, data: InrBatch) -> Metrics:
        return evaluate(state, data, stats, num_classes, config.eval_batch_size, sharding)

    def batch(data: InrBatch, idx):
        return shard((jax.tree.map(lambda x: x[idx], data.weights), data.labels[idx]), sharding)

    def step(state: TrainState, idx, key):
        ws, labels = batch(train, idx)
        pairs = None if partners is None else batch(partners, partner_indices(key, len(partners.labels), len(idx)))
        state, loss, accuracy = train_step(state, ws, labels, key, stats, num_classes, augment, pairs)
        return state, {"loss": loss, "accuracy": accuracy}

    best = BestValidation(
        state.replace(params=arrays["best_params"], batch_stats=arrays.get("best_batch_stats", {})),
        measure,
        val,
        test,
        config.recipe.ties,
    )
    state = fit_epochs(
        state,
        step,
        len(train.labels),
        config,
        history,
        start_epoch=start_epoch,
        stop_after_epochs=stop_after_epochs,
        evaluate=best,
        checkpointer=checkpointer,
        checkpoint_arrays=best.arrays,
        prefix="train_",
        postfix={"val_acc": "val_accuracy", "test_acc": "test_accuracy"},
        progress=progress,
    )
    best_state = best.best_state(state)
    history["final_eval"] = {
        name: measure(best_state, on_host(data))._asdict() for name, data in (final_eval or {}).items()
    }
    return history
