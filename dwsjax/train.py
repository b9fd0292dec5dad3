"""Supervised training of weight-space classifiers: jitted steps, epochs, checkpoints.

One epoch = one pass over the shuffled training INRs in batches; every
training batch is augmented inside the jitted step (``augment(key, ws, y) ->
(ws, y)`` with soft labels ``y``), normalised with the training set's
statistics, and fed to the model with AdamW and softmax cross-entropy. After
each epoch the model is evaluated on validation and test sets and the epoch
with the best validation accuracy is kept (as in the paper). All randomness
comes from ``(seed, epoch)``, and a checkpoint is written after every epoch,
so a killed run resumed from its last checkpoint ends with the same metrics as
an uninterrupted one. Batches are split over all local devices (data
parallelism through ``jax.sharding``; parameters are replicated).
"""

from __future__ import annotations

import functools
import math
import os
import time
from pathlib import Path
from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax.training import train_state
from jax.sharding import NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from dwsjax.devices import BATCH_AXIS, local_mesh
from dwsjax.store import InrBatch
from dwsjax.weights import WeightStats, normalize, weight_stats

Augment = Callable[[jax.Array, object, jax.Array], tuple[object, jax.Array]]


class TrainConfig(NamedTuple):
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 1e-3
    weight_decay: float = 5e-4
    seed: int = 0
    eval_batch_size: int = 256


class TrainState(train_state.TrainState):
    dropout_key: jax.Array


class Metrics(NamedTuple):
    loss: float
    accuracy: float


def soft_cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean of ``-sum_c y_c log softmax(logits)_c`` over the batch; ``labels`` ``(B, C)``."""
    return jnp.mean(optax.softmax_cross_entropy(logits, labels))


@functools.lru_cache(maxsize=None)
def adamw(learning_rate: float, weight_decay: float) -> optax.GradientTransformation:
    """One optimiser object per setting: it is a static field of :class:`TrainState`, so
    reusing it (with the same model object) lets later runs reuse the compiled steps."""
    return optax.adamw(learning_rate, weight_decay=weight_decay)


def create_state(model: nn.Module, example: InrBatch, config: TrainConfig) -> TrainState:
    init_key, dropout_key = jax.random.split(jax.random.key(config.seed))
    sample = jax.tree.map(lambda x: x[:1], example.weights)
    params = model.init({"params": init_key, "dropout": dropout_key}, sample, train=False)["params"]
    tx = adamw(config.learning_rate, config.weight_decay)
    return TrainState.create(apply_fn=model.apply, params=params, tx=tx, dropout_key=dropout_key)


@functools.partial(jax.jit, static_argnames=("num_classes", "augment"))
def train_step(state: TrainState, ws, labels, key, stats: WeightStats, num_classes: int, augment: Augment | None):
    """One AdamW step on an augmented, normalised batch: ``-> (state, loss, accuracy)``."""
    aug_key, dropout_key = jax.random.split(key)
    targets = jax.nn.one_hot(labels, num_classes)
    if augment is not None:
        ws, targets = augment(aug_key, ws, targets)
    inputs = normalize(ws, stats)

    def loss_fn(params):
        logits = state.apply_fn({"params": params}, inputs, train=True, rngs={"dropout": dropout_key})
        return soft_cross_entropy(logits, targets), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(targets, -1))
    return state.apply_gradients(grads=grads), loss, accuracy


@functools.partial(jax.jit, static_argnames=("num_classes",))
def eval_step(state: TrainState, ws, labels, mask, stats: WeightStats, num_classes: int):
    """Sum of cross-entropy losses and number of correct predictions over unmasked rows."""
    logits = state.apply_fn({"params": state.params}, normalize(ws, stats), train=False)
    losses = optax.softmax_cross_entropy(logits, jax.nn.one_hot(labels, num_classes))
    correct = jnp.argmax(logits, -1) == labels
    return jnp.sum(losses * mask), jnp.sum(correct * mask)


def on_host(data: InrBatch) -> InrBatch:
    """``data`` with NumPy weights: batches are then gathered on the host, without
    compiling a device gather for every dataset size."""
    return data._replace(weights=jax.tree.map(np.asarray, data.weights))


def _shard(tree, sharding):
    return jax.tree.map(lambda x: jax.device_put(np.asarray(x), sharding), tree)


def evaluate(state: TrainState, data: InrBatch, stats: WeightStats, num_classes: int, batch_size: int,
             sharding) -> Metrics:
    """Loss and accuracy over all of ``data``; the last batch is padded and masked."""
    n = len(data.labels)
    devices = sharding.mesh.devices.size
    batch_size = math.ceil(batch_size / devices) * devices
    total_loss, total_correct = 0.0, 0.0
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)
        mask = (idx < n).astype(np.float32)
        idx = np.minimum(idx, n - 1)
        ws = jax.tree.map(lambda x: x[idx], data.weights)
        loss, correct = eval_step(state, *_shard((ws, data.labels[idx], mask), sharding), stats, num_classes)
        total_loss += float(loss)
        total_correct += float(correct)
    return Metrics(total_loss / n, total_correct / n)


def _epoch_order(seed: int, epoch: int, n: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(n)


class Checkpointer:
    """Orbax checkpoints of ``{state, best_params}`` plus the JSON history, one per epoch."""

    def __init__(self, directory: str | os.PathLike):
        self.manager = ocp.CheckpointManager(
            Path(directory).absolute(), options=ocp.CheckpointManagerOptions(max_to_keep=2)
        )

    def latest_epoch(self) -> int | None:
        return self.manager.latest_step()

    def save(self, epoch: int, state: TrainState, best_params, history: dict) -> None:
        self.manager.save(
            epoch,
            args=ocp.args.Composite(
                arrays=ocp.args.StandardSave({"state": state, "best_params": best_params}),
                history=ocp.args.JsonSave(history),
            ),
        )
        self.manager.wait_until_finished()

    def restore(self, epoch: int, state: TrainState) -> tuple[TrainState, object, dict]:
        template = {"state": state, "best_params": state.params}
        restored = self.manager.restore(
            epoch,
            args=ocp.args.Composite(
                arrays=ocp.args.StandardRestore(template), history=ocp.args.JsonRestore()
            ),
        )
        return restored.arrays["state"], restored.arrays["best_params"], restored.history


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
) -> dict:
    """Train, select the best-validation epoch, and return the history and final metrics.

    ``stop_after_epochs`` ends the run early after that many epochs of this call
    (to simulate a killed job in tests); ``resume`` continues from the latest
    checkpoint in ``checkpoint_dir``. Each set in ``final_eval`` is evaluated once
    with the best-validation parameters after training, as
    ``history["final_eval"][name] = {"loss", "accuracy"}``.
    """
    mesh = local_mesh()
    devices = mesh.devices.size
    if config.batch_size % devices:
        raise ValueError(f"batch size {config.batch_size} must be a multiple of the {devices} local devices")
    if len(train.labels) < config.batch_size:
        raise ValueError(f"{len(train.labels)} training INRs are fewer than one batch of {config.batch_size}")
    sharding = NamedSharding(mesh, PartitionSpec(BATCH_AXIS))
    replicated = NamedSharding(mesh, PartitionSpec())
    train, val, test = on_host(train), on_host(val), on_host(test)
    stats = weight_stats(train.weights)
    state = create_state(model, train, config)
    best_params = state.params
    history: dict = {"epochs": [], "best_epoch": None, "best_val_accuracy": -1.0}
    checkpointer = Checkpointer(checkpoint_dir) if checkpoint_dir is not None else None
    start_epoch = 0
    if checkpointer is not None and checkpointer.latest_epoch() is not None:
        if not resume:
            raise ValueError(
                f"{checkpoint_dir} already holds checkpoints; pass --resume to continue that run "
                "or choose another run directory"
            )
        state, best_params, history = checkpointer.restore(checkpointer.latest_epoch(), state)
        start_epoch = checkpointer.latest_epoch() + 1
    state = jax.device_put(state, replicated)

    steps_per_epoch = len(train.labels) // config.batch_size
    run_epochs = range(start_epoch, config.epochs)
    if stop_after_epochs is not None:
        run_epochs = run_epochs[:stop_after_epochs]
    bar = tqdm(total=len(run_epochs) * steps_per_epoch * config.batch_size, unit="INR", desc="train",
               disable=not progress)  # fmt: skip
    for epoch in run_epochs:
        order = _epoch_order(config.seed, epoch, len(train.labels))
        epoch_key = jax.random.fold_in(jax.random.key(config.seed), epoch)
        losses, accuracies = [], []
        start = time.perf_counter()
        for i in range(steps_per_epoch):
            idx = order[i * config.batch_size : (i + 1) * config.batch_size]
            ws, labels = _shard((jax.tree.map(lambda x: x[idx], train.weights), train.labels[idx]), sharding)
            state, loss, accuracy = train_step(
                state, ws, labels, jax.random.fold_in(epoch_key, i), stats, num_classes, augment
            )
            losses.append(loss)
            accuracies.append(accuracy)
            bar.update(config.batch_size)
        train_seconds = time.perf_counter() - start
        val_metrics = evaluate(state, val, stats, num_classes, config.eval_batch_size, sharding)
        test_metrics = evaluate(state, test, stats, num_classes, config.eval_batch_size, sharding)
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "train_accuracy": float(np.mean(accuracies)),
            "val_loss": val_metrics.loss,
            "val_accuracy": val_metrics.accuracy,
            "test_loss": test_metrics.loss,
            "test_accuracy": test_metrics.accuracy,
            "train_samples_per_s": steps_per_epoch * config.batch_size / train_seconds,
        }
        history["epochs"].append(record)
        if val_metrics.accuracy > history["best_val_accuracy"]:
            history.update(best_epoch=epoch, best_val_accuracy=val_metrics.accuracy,
                           best_test_accuracy=test_metrics.accuracy)  # fmt: skip
            best_params = state.params
        bar.set_postfix(val_acc=f"{val_metrics.accuracy:.3f}", test_acc=f"{test_metrics.accuracy:.3f}")
        if checkpointer is not None:
            checkpointer.save(epoch, state, best_params, history)
    bar.close()
    history["completed"] = len(history["epochs"]) == config.epochs
    best_state = state.replace(params=best_params)
    history["final_eval"] = {
        name: evaluate(best_state, on_host(data), stats, num_classes, config.eval_batch_size, sharding)._asdict()
        for name, data in (final_eval or {}).items()
    }
    return history
