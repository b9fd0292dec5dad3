"""The epoch loop shared by supervised training and SimCLR pre-training.

An epoch is one pass over a ``(seed, epoch)``-seeded shuffle of the ``n``
training INRs in full batches (:func:`dwsjax.batching.epoch_batches`); step
``i`` of epoch ``e`` gets the key :func:`step_key` ``(seed, e, i)``. All
randomness therefore comes from ``(seed, epoch, step)``, and a run resumed from
the checkpoint written after every epoch ends as an uninterrupted one does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import jax
import numpy as np
from tqdm.auto import tqdm

from dwsjax.batching import epoch_batches
from dwsjax.checkpoints import Checkpointer

if TYPE_CHECKING:
    from dwsjax.train import TrainConfig

State = TypeVar("State")
Step = Callable[[State, np.ndarray, jax.Array], tuple[State, dict]]


def step_key(seed: int, epoch: int, step: int) -> jax.Array:
    """The PRNG key of one training step, a function of ``(seed, epoch, step)`` only.

    Args:
        seed: The run's seed.
        epoch: The epoch (0-based).
        step: The step within the epoch (0-based).

    Returns:
        ``fold_in(fold_in(key(seed), epoch), step)``.
    """
    return jax.random.fold_in(jax.random.fold_in(jax.random.key(seed), epoch), step)


def epochs_to_run(start_epoch: int, epochs: int, stop_after_epochs: int | None) -> range:
    """Epochs ``start_epoch .. epochs - 1``, at most ``stop_after_epochs`` of them."""
    run = range(start_epoch, epochs)
    return run if stop_after_epochs is None else run[:stop_after_epochs]


def _state_only(state) -> dict:
    return {"state": state}


def fit_epochs(
    state: State,
    step: Step,
    n: int,
    config: TrainConfig,
    history: dict,
    *,
    start_epoch: int = 0,
    stop_after_epochs: int | None = None,
    evaluate: Callable[[State, int, dict], dict] | None = None,
    checkpointer: Checkpointer | None = None,
    checkpoint_arrays: Callable[[State], dict] = _state_only,
    prefix: str = "",
    postfix: dict[str, str] | None = None,
    progress: bool = True,
    desc: str = "train",
) -> State:
    """Train epochs ``start_epoch .. config.epochs - 1``, recording and checkpointing each.

    Every epoch appends one record to ``history["epochs"]``: ``epoch``, the mean
    over the epoch's steps of each metric ``step`` returns (named ``prefix + name``),
    the entries ``evaluate`` returns, ``prefix + "samples_per_s"`` (training INRs per
    second, evaluation excluded) and ``epoch_seconds`` (wall time, evaluation
    included). Then the checkpoint ``checkpoint_arrays(state)`` with ``history`` is
    saved as that epoch. Afterwards ``history["completed"]`` says whether the
    run has all ``config.epochs`` records.

    Args:
        state: the training state at ``start_epoch``.
        step: ``(state, indices, key) -> (state, metrics)``: one optimiser step on the
            training INRs ``indices`` ``(batch_size,)``; ``metrics`` maps names to scalars.
        n: the number of training INRs.
        config: the run's :class:`dwsjax.train.TrainConfig` (epochs, seed, batch size).
        history: the run's history, with its earlier epochs' records when resumed.
        start_epoch: the first epoch to train (after a checkpoint's).
        stop_after_epochs: stop after that many epochs of this call (a killed job).
        evaluate: ``(state, epoch, history) -> entries`` after each epoch's training,
            e.g. validation metrics; it may update ``history`` (best epoch).
        checkpointer: where to save a checkpoint after every epoch, or ``None``.
        checkpoint_arrays: the arrays a checkpoint holds, ``{"state": state}`` by default.
        prefix: prepended to the names of the step metrics and of ``samples_per_s``.
        postfix: progress-bar label -> record key of the values shown after each epoch.
        progress: show a progress bar over training INRs (rate and time left).
        desc: the progress bar's label.

    Returns:
        The state after the last epoch trained.
    """
    run_epochs = epochs_to_run(start_epoch, config.epochs, stop_after_epochs)
    steps_per_epoch = n // config.batch_size
    bar = tqdm(total=len(run_epochs) * steps_per_epoch * config.batch_size, unit="INR", desc=desc, disable=not progress)
    for epoch in run_epochs:
        metrics: dict[str, list] = {}
        start = time.perf_counter()
        for i, idx in enumerate(epoch_batches(config.seed, epoch, n, config.batch_size)):
            state, values = step(state, idx, step_key(config.seed, epoch, i))
            for name, value in values.items():
                metrics.setdefault(name, []).append(value)
            bar.update(config.batch_size)
        train_seconds = time.perf_counter() - start
        entries = evaluate(state, epoch, history) if evaluate is not None else {}
        record = {
            "epoch": epoch,
            **{prefix + name: float(np.mean(values)) for name, values in metrics.items()},
            **entries,
            prefix + "samples_per_s": steps_per_epoch * config.batch_size / train_seconds,
            "epoch_seconds": time.perf_counter() - start,
        }
        history["epochs"].append(record)
        bar.set_postfix({label: f"{record[key]:.3f}" for label, key in (postfix or {}).items()})
        if checkpointer is not None:
            checkpointer.save(epoch, checkpoint_arrays(state), history)
    bar.close()
    history["completed"] = len(history["epochs"]) == config.epochs
    return state
