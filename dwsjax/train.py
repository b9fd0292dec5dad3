"""Supervised training of weight-space classifiers: jitted steps, epochs, checkpoints.

One epoch = one pass over the shuffled training INRs in batches; every
training batch is augmented inside the jitted step (``augment(key, ws, y) ->
(ws, y)`` with soft labels ``y``), normalised with the training set's
statistics, and fed to the model with softmax cross-entropy and the run's
optimiser (:mod:`dwsjax.optim`: AdamW or AMSGrad, warmup, decay, clipping). After
each epoch the model is evaluated on validation and test sets and the epoch
with the best validation accuracy is kept (as in the paper). All randomness
comes from ``(seed, epoch)``, and a checkpoint is written after every epoch,
so a killed run resumed from its last checkpoint ends with the same metrics as
an uninterrupted one. Batches are split over all local accelerators (data
parallelism through ``jax.sharding``; parameters are replicated); on CPU one
device trains with all cores.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import orbax.checkpoint as ocp
from flax.training import train_state
from jax.sharding import NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from dwsjax.devices import BATCH_AXIS, data_parallel_mesh
from dwsjax.models.probes import raw_kwargs, reads_raw_weights
from dwsjax.optim import TrainRecipe, optimizer
from dwsjax.store import InrBatch, sha256
from dwsjax.weights import WeightSpace, WeightStats, finite_rows, normalize, weight_stats

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
    return optimizer(r.learning_rate, r.weight_decay, r.warmup_steps, r.decay,
                     total_steps if r.decay != "constant" else None, r.clip_norm, r.amsgrad)  # fmt: skip


def create_state(model: nn.Module, example: InrBatch, config: TrainConfig) -> TrainState:
    """Fresh parameters and optimiser state; a cosine decay lasts ``epochs`` epochs of full
    batches of ``example``."""
    init_key, dropout_key = jax.random.split(jax.random.key(config.seed))
    sample = jax.tree.map(lambda x: x[:1], example.weights)
    variables = model.init({"params": init_key, "dropout": dropout_key}, sample, train=False,
                           **raw_kwargs(model, sample))  # fmt: skip
    tx = config_optimizer(config, config.epochs * max(len(example.labels) // config.batch_size, 1))
    return TrainState.create(apply_fn=model.apply, params=variables["params"], tx=tx, dropout_key=dropout_key,
                             batch_stats=variables.get("batch_stats", {}),
                             reads_raw_weights=reads_raw_weights(model))  # fmt: skip


def model_inputs(state: TrainState, ws, stats: WeightStats) -> tuple[tuple, dict]:
    """``(args, kwargs)`` of the model for a batch ``ws``: the normalised weights, and the
    raw ones as ``raw=`` for a model with probe features."""
    return (normalize(ws, stats),), ({"raw": ws} if state.reads_raw_weights else {})


@functools.partial(jax.jit, static_argnames=("num_classes", "augment"))
def train_step(state: TrainState, ws, labels, key, stats: WeightStats, num_classes: int, augment: Augment | None):
    """One optimiser step on an augmented, normalised batch: ``-> (state, loss, accuracy)``."""
    aug_key, dropout_key = jax.random.split(key)
    targets = jax.nn.one_hot(labels, num_classes)
    if augment is not None:
        ws, targets = augment(aug_key, ws, targets)
    inputs = model_inputs(state, ws, stats)

    def loss_fn(params):
        logits, batch_stats = apply_train(state, params, inputs, dropout_key)
        return soft_cross_entropy(logits, targets), (logits, batch_stats)

    (loss, (logits, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == jnp.argmax(targets, -1))
    return state.apply_gradients(grads=grads).replace(batch_stats=batch_stats), loss, accuracy


def apply_train(state: TrainState, params, inputs, dropout_key):
    """``(outputs, batch_stats)`` of the model in training mode; BatchNorm statistics are
    the batch's and the running averages are updated (returned unchanged without BatchNorm)."""
    (args, kwargs), rngs = inputs, {"dropout": dropout_key}
    if not state.batch_stats:
        return state.apply_fn({"params": params}, *args, train=True, rngs=rngs, **kwargs), state.batch_stats
    out, updates = state.apply_fn(state.variables(params), *args, train=True, rngs=rngs, mutable=["batch_stats"],
                                  **kwargs)  # fmt: skip
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
        raise ValueError(f"pre-trained {path} has shape {jax.tree.map(jnp.shape, pretrained)}, the model "
                         f"needs {jax.tree.map(jnp.shape, params)}")  # fmt: skip
    if not isinstance(params, dict):
        raise ValueError(f"pre-trained {path} is a subtree but the model has an array there")
    unknown = sorted(set(pretrained) - set(params))
    if unknown:
        raise ValueError(f"pre-trained {path} has {unknown} that the model lacks (it has {sorted(params)})")
    return {k: overlay_params(v, pretrained[k], f"{path}/{k}") if k in pretrained else v for k, v in params.items()}


def _listed(values: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(v) for v in values[:limit].tolist())
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def check_epochs(epochs: int) -> None:
    if epochs < 1:
        raise ValueError(f"epochs must be >= 1, got {epochs} (--epochs)")


def check_finite_split(name: str, data: InrBatch) -> None:
    """Refuse an empty split, or one with NaN/inf weights, naming the INRs: one NaN weight
    otherwise turns the normalisation statistics, every loss and every prediction into NaN silently."""
    if len(data.labels) == 0:
        raise ValueError(f"the {name} set is empty; give it at least one INR")
    bad = np.flatnonzero(~finite_rows(data.weights))
    if bad.size:
        raise ValueError(
            f"the {name} set has {bad.size} of {len(data.labels)} INRs with NaN/inf weights (indices "
            f"{_listed(bad)}; object ids {_listed(np.asarray(data.object_ids)[bad])}). Refit those "
            f"objects, or drop them with dwsjax.store.select({name}, dwsjax.weights.finite_rows({name}.weights))"
        )


def check_labels(name: str, labels: np.ndarray, num_classes: int) -> None:
    """Refuse labels outside ``0 .. num_classes - 1`` (one-hot would make them all-zero targets)."""
    labels = np.asarray(labels)
    outside = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if outside.size:
        raise ValueError(
            f"the {name} set has {outside.size} labels outside 0..{num_classes - 1} (indices {_listed(outside)}, "
            f"labels {_listed(labels[outside])}); pass num_classes covering every class, or fix the labels"
        )


def normalisation_stats(train: WeightSpace, stats: WeightStats | None = None) -> WeightStats:
    """``stats``, or the per-layer statistics of the training weights; refused if not finite."""
    stats = weight_stats(train) if stats is None else stats
    for part, leaves in (("mean", jax.tree.leaves(stats.mean)), ("std", jax.tree.leaves(stats.std))):
        if not all(np.isfinite(np.asarray(leaf)).all() for leaf in leaves):
            raise ValueError(
                f"the normalisation {part} has NaN/inf entries; compute the statistics with "
                "dwsjax.weights.weight_stats from finite training weights (see dwsjax.weights.finite_rows)"
            )
    return stats


def on_host(data: InrBatch) -> InrBatch:
    """``data`` with NumPy weights: batches are then gathered on the host, without
    compiling a device gather for every dataset size."""
    return data._replace(weights=jax.tree.map(np.asarray, data.weights))


def batch_shardings() -> tuple[NamedSharding, NamedSharding]:
    """``(batch, replicated)`` shardings over the training devices (``data_parallel_mesh``):
    batches are split along their first axis, parameters and optimizer state are replicated."""
    mesh = data_parallel_mesh()
    return NamedSharding(mesh, PartitionSpec(BATCH_AXIS)), NamedSharding(mesh, PartitionSpec())


def check_batch_size(batch_size: int, n: int, sharding: NamedSharding) -> None:
    devices = sharding.mesh.devices.size
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size} (--batch-size)")
    if batch_size % devices:
        raise ValueError(f"batch size {batch_size} must be a multiple of the {devices} local devices")
    if n < batch_size:
        raise ValueError(f"{n} training INRs are fewer than one batch of {batch_size}")


def shard(tree, sharding):
    """Put every leaf of ``tree`` (host arrays) on the devices with ``sharding``."""
    return jax.tree.map(lambda x: jax.device_put(np.asarray(x), sharding), tree)


def padded_batches(n: int, batch_size: int, sharding: NamedSharding):
    """Yield ``(indices, mask)`` covering ``range(n)`` in fixed-size batches (a multiple
    of the device count); the last batch repeats row ``n - 1`` with ``mask = 0``."""
    devices = sharding.mesh.devices.size
    batch_size = math.ceil(batch_size / devices) * devices
    for start in range(0, n, batch_size):
        idx = np.arange(start, start + batch_size)
        yield np.minimum(idx, n - 1), (idx < n).astype(np.float32)


def evaluate(state: TrainState, data: InrBatch, stats: WeightStats, num_classes: int, batch_size: int,
             sharding) -> Metrics:
    """Loss and accuracy over all of ``data``; the last batch is padded and masked."""
    n = len(data.labels)
    total_loss, total_correct = 0.0, 0.0
    for idx, mask in padded_batches(n, batch_size, sharding):
        ws = jax.tree.map(lambda x: x[idx], data.weights)
        loss, correct = eval_step(state, *shard((ws, data.labels[idx], mask), sharding), stats, num_classes)
        total_loss += float(loss)
        total_correct += float(correct)
    return Metrics(total_loss / n, total_correct / n)


def epoch_batches(seed: int, epoch: int, n: int, batch_size: int) -> list[np.ndarray]:
    """Index batches of one epoch: a ``(seed, epoch)``-seeded shuffle of ``range(n)``
    cut into ``n // batch_size`` full batches (the remainder is dropped)."""
    order = np.random.default_rng([seed, epoch]).permutation(n)
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(n // batch_size)]


def step_key(seed: int, epoch: int, step: int) -> jax.Array:
    """The PRNG key of one training step, a function of ``(seed, epoch, step)`` only."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), epoch), step)


class Checkpointer:
    """Orbax checkpoints of a dict of array pytrees plus the JSON history, one per epoch."""

    def __init__(self, directory: str | os.PathLike):
        self.manager = ocp.CheckpointManager(
            Path(directory).absolute(), options=ocp.CheckpointManagerOptions(max_to_keep=2)
        )

    def latest_epoch(self) -> int | None:
        return self.manager.latest_step()

    def save(self, epoch: int, arrays: dict, history: dict) -> None:
        self.manager.save(
            epoch,
            args=ocp.args.Composite(
                arrays=ocp.args.StandardSave(arrays),
                history=ocp.args.JsonSave(history),
            ),
        )
        self.manager.wait_until_finished()

    def history(self, epoch: int) -> dict:
        """The JSON history saved with ``epoch`` (without reading its arrays)."""
        return self.manager.restore(epoch, args=ocp.args.Composite(history=ocp.args.JsonRestore())).history

    def restore(self, epoch: int, template: dict) -> tuple[dict, dict]:
        """``(arrays, history)`` of ``epoch``; ``template`` gives the arrays' structure."""
        restored = self.manager.restore(
            epoch,
            args=ocp.args.Composite(
                arrays=ocp.args.StandardRestore(template), history=ocp.args.JsonRestore()
            ),
        )
        return restored.arrays, restored.history


def best_arrays(state: TrainState, best: TrainState) -> dict:
    """What a checkpoint holds: the state, and the best-validation epoch's parameters and
    BatchNorm statistics (``best_batch_stats`` only for a model with BatchNorm)."""
    arrays = {"state": state, "best_params": best.params}
    return arrays | ({"best_batch_stats": best.batch_stats} if best.batch_stats else {})


def overwrite_refused(checkpoint_dir: str | os.PathLike) -> ValueError:
    """The error for a run directory that holds checkpoints of an earlier run."""
    return ValueError(f"{checkpoint_dir} already holds checkpoints; pass --resume to continue that run "
                      "or choose another run directory")  # fmt: skip


def refuse_overwrite(checkpoint_dir: str | os.PathLike, resume: bool) -> None:
    """Raise unless ``resume`` when ``checkpoint_dir`` holds checkpoints of an earlier run
    (CLIs call it before fitting INRs, so a wrong run directory fails at once)."""
    if not resume and Path(checkpoint_dir).is_dir() and Checkpointer(checkpoint_dir).latest_epoch() is not None:
        raise overwrite_refused(checkpoint_dir)


def run_config(model: nn.Module, config: TrainConfig, data: InrBatch, **facts) -> dict:
    """A run's configuration as JSON, what a resumed run must share with its checkpoint:
    the model's class and fields, the training recipe, seed and epochs, the training
    INRs (count and a digest of their labels) and the caller's ``facts`` (e.g. the
    augmentation)."""
    fields = {f.name: repr(getattr(model, f.name))
              for f in dataclasses.fields(model) if f.name not in ("parent", "name")}  # fmt: skip
    labels = sha256(np.ascontiguousarray(data.labels).tobytes())[:12]
    return {"model": type(model).__name__, **{f"model.{k}": v for k, v in fields.items()},
            **config.recipe._asdict(), "epochs": config.epochs, "seed": config.seed,
            "train_inrs": len(data.labels), "train_labels_sha256": labels, **facts}  # fmt: skip


def check_same_run(checkpoint_dir, saved: dict | None, current: dict) -> None:
    """Refuse to resume a checkpoint written under another :func:`run_config`. More epochs
    are allowed when the learning rate is constant after warmup (the schedule does not
    depend on the run's length)."""
    if saved is None:  # written before runs recorded their configuration
        return
    free = {"epochs"} if current.get("decay") == "constant" else set()
    differ = sorted(k for k in saved.keys() | current.keys() if k not in free and saved.get(k) != current.get(k))
    if differ:
        details = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in differ)
        raise ValueError(f"cannot resume {checkpoint_dir}: its checkpoints come from a run configured otherwise "
                         f"({details}); resume with that run's settings or choose another run directory")  # fmt: skip


def resume_or_start(checkpoint_dir, resume: bool, arrays: dict, history: dict):
    """``(checkpointer, arrays, history, start_epoch)``: the fresh ``arrays``/``history``
    at epoch 0, or the latest checkpoint's when ``resume``; refuses to overwrite a
    run directory that holds checkpoints unless ``resume``, and to resume one whose
    ``history["config"]`` differs from the fresh history's (:func:`check_same_run`) or
    that holds more trained epochs than that configuration asks for."""
    if checkpoint_dir is None:
        return None, arrays, history, 0
    checkpointer = Checkpointer(checkpoint_dir)
    latest = checkpointer.latest_epoch()
    if latest is None:
        return checkpointer, arrays, history, 0
    if not resume:
        raise overwrite_refused(checkpoint_dir)
    config = history.get("config")
    if config is not None:
        check_same_run(checkpoint_dir, checkpointer.history(latest).get("config"), config)
        if latest + 1 > config["epochs"]:
            raise ValueError(f"cannot resume {checkpoint_dir}: it holds {latest + 1} trained epochs, more than the "
                             f"{config['epochs']} asked (its best epoch would not be this run's); resume with at "
                             f"least {latest + 1} epochs or choose another run directory")  # fmt: skip
    arrays, history = checkpointer.restore(latest, arrays)
    if config is not None:
        history["config"] = config
    return checkpointer, arrays, history, latest + 1


def epochs_to_run(start_epoch: int, epochs: int, stop_after_epochs: int | None) -> range:
    """Epochs ``start_epoch .. epochs - 1``, at most ``stop_after_epochs`` of them."""
    run = range(start_epoch, epochs)
    return run if stop_after_epochs is None else run[:stop_after_epochs]


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

    Returns:
        The history: ``epochs`` (per-epoch records), ``best_epoch``, ``best_val_accuracy``,
        ``best_test_accuracy``, ``final_eval``, ``config`` and ``completed``.

    Raises:
        ValueError: If ``epochs`` is out of range, a split has non-finite weights or labels
            outside ``[0, num_classes)``, the batch size does not suit the data or the devices,
            ``checkpoint_dir`` holds another run, or ``init_params`` do not fit the model.
    """
    check_epochs(config.epochs)
    for name, data in {"train": train, "val": val, "test": test, **(final_eval or {})}.items():
        check_finite_split(name, data)
        check_labels(name, data.labels, num_classes)
    sharding, replicated = batch_shardings()
    check_batch_size(config.batch_size, len(train.labels), sharding)
    train, val, test = on_host(train), on_host(val), on_host(test)
    stats = normalisation_stats(train.weights, stats)
    state = create_state(model, train, config)
    if init_params is not None:
        state = state.replace(params=overlay_params(state.params, init_params))
    history: dict = {"config": run_config(model, config, train, **(facts or {})), "epochs": [], "best_epoch": None,
                     "best_val_accuracy": -1.0}  # fmt: skip
    checkpointer, arrays, history, start_epoch = resume_or_start(
        checkpoint_dir, resume, best_arrays(state, state), history
    )
    state = jax.device_put(arrays["state"], replicated)
    best = state.replace(params=arrays["best_params"], batch_stats=arrays.get("best_batch_stats", {}))

    steps_per_epoch = len(train.labels) // config.batch_size
    run_epochs = epochs_to_run(start_epoch, config.epochs, stop_after_epochs)
    bar = tqdm(total=len(run_epochs) * steps_per_epoch * config.batch_size, unit="INR", desc="train",
               disable=not progress)  # fmt: skip
    for epoch in run_epochs:
        losses, accuracies = [], []
        start = time.perf_counter()
        for i, idx in enumerate(epoch_batches(config.seed, epoch, len(train.labels), config.batch_size)):
            ws, labels = shard((jax.tree.map(lambda x: x[idx], train.weights), train.labels[idx]), sharding)
            state, loss, accuracy = train_step(
                state, ws, labels, step_key(config.seed, epoch, i), stats, num_classes, augment
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
            "epoch_seconds": time.perf_counter() - start,
        }
        history["epochs"].append(record)
        if val_metrics.accuracy > history["best_val_accuracy"]:
            history.update(best_epoch=epoch, best_val_accuracy=val_metrics.accuracy,
                           best_test_accuracy=test_metrics.accuracy)  # fmt: skip
            best = state
        bar.set_postfix(val_acc=f"{val_metrics.accuracy:.3f}", test_acc=f"{test_metrics.accuracy:.3f}")
        if checkpointer is not None:
            checkpointer.save(epoch, best_arrays(state, best), history)
    bar.close()
    history["completed"] = len(history["epochs"]) == config.epochs
    best_state = state.replace(params=best.params, batch_stats=best.batch_stats)
    history["final_eval"] = {
        name: evaluate(best_state, on_host(data), stats, num_classes, config.eval_batch_size, sharding)._asdict()
        for name, data in (final_eval or {}).items()
    }
    return history
