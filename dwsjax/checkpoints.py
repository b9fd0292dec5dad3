"""Checkpoints and resume of training runs (orbax).

A run directory holds one checkpoint per epoch (the latest two are kept): a
dict of array pytrees (e.g. ``{"state": TrainState, ...}``) and the run's JSON
history. ``history["config"]`` (:func:`run_config`) records what a resumed run
must share with the run that wrote the checkpoint; :func:`resume_or_start`
refuses to overwrite a run directory or to continue another run's checkpoints.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

import flax.linen as nn
import numpy as np
import orbax.checkpoint as ocp

from dwsjax.store import InrBatch, sha256

if TYPE_CHECKING:
    from dwsjax.train import TrainConfig


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
            args=ocp.args.Composite(arrays=ocp.args.StandardRestore(template), history=ocp.args.JsonRestore()),
        )
        return restored.arrays, restored.history


def overwrite_refused(checkpoint_dir: str | os.PathLike) -> ValueError:
    """The error for a run directory that holds checkpoints of an earlier run."""
    return ValueError(
        f"{checkpoint_dir} already holds checkpoints; pass --resume to continue that run "
        "or choose another run directory"
    )


def refuse_overwrite(checkpoint_dir: str | os.PathLike, resume: bool) -> None:
    """Refuse a run directory that holds checkpoints of an earlier run, unless ``resume``.

    CLIs call it before fitting INRs, so a wrong run directory fails at once.

    Args:
        checkpoint_dir: The run's checkpoint directory (need not exist).
        resume: The run continues the checkpointed one.

    Raises:
        ValueError: If ``checkpoint_dir`` holds checkpoints and not ``resume``.
    """
    if not resume and Path(checkpoint_dir).is_dir() and Checkpointer(checkpoint_dir).latest_epoch() is not None:
        raise overwrite_refused(checkpoint_dir)


def run_config(model: nn.Module, config: TrainConfig, data: InrBatch, **facts) -> dict:
    """A run's configuration as JSON, what a resumed run must share with its checkpoint.

    Args:
        model: the trained module; its class and fields (``repr`` of each) are recorded.
        config: the training recipe, seed and epochs.
        data: the training INRs; their count and a digest of their labels are recorded.
        **facts: JSON values the caller knows (e.g. the augmentation).

    Returns:
        A flat dict of JSON values.
    """
    fields = {
        f.name: repr(getattr(model, f.name)) for f in dataclasses.fields(model) if f.name not in ("parent", "name")
    }
    labels = sha256(np.ascontiguousarray(data.labels).tobytes())[:12]
    return {
        "model": type(model).__name__,
        **{f"model.{k}": v for k, v in fields.items()},
        **config.recipe._asdict(),
        "epochs": config.epochs,
        "seed": config.seed,
        "train_inrs": len(data.labels),
        "train_labels_sha256": labels,
        **facts,
    }


def check_same_run(checkpoint_dir, saved: dict | None, current: dict) -> None:
    """Refuse to resume a checkpoint written under another :func:`run_config`.

    More epochs are allowed when the learning rate is constant after warmup (the
    schedule does not depend on the run's length).

    Args:
        checkpoint_dir: The run directory (named in the error).
        saved: The checkpoint's configuration, ``None`` for one written before runs recorded it.
        current: This run's configuration.

    Raises:
        ValueError: If the configurations differ, naming every differing entry.
    """
    if saved is None:  # written before runs recorded their configuration
        return
    free = {"epochs"} if current.get("decay") == "constant" else set()
    differ = sorted(k for k in saved.keys() | current.keys() if k not in free and saved.get(k) != current.get(k))
    if differ:
        details = "; ".join(f"{k}: checkpoint {saved.get(k)!r}, now {current.get(k)!r}" for k in differ)
        raise ValueError(
            f"cannot resume {checkpoint_dir}: its checkpoints come from a run configured otherwise "
            f"({details}); resume with that run's settings or choose another run directory"
        )


def resume_or_start(checkpoint_dir, resume: bool, arrays: dict, history: dict):
    """Start a run, or continue the one checkpointed in ``checkpoint_dir``.

    Refuses to overwrite a run directory that holds checkpoints unless ``resume``,
    and to resume one whose ``history["config"]`` differs from the fresh history's
    (:func:`check_same_run`) or that holds more trained epochs than that
    configuration asks for.

    Args:
        checkpoint_dir: the run directory, or ``None`` for a run without checkpoints.
        resume: continue from the latest checkpoint in ``checkpoint_dir``.
        arrays: the fresh run's arrays (also the structure to restore).
        history: the fresh run's history (with its ``"config"``).

    Returns:
        ``(checkpointer, arrays, history, start_epoch)``: the fresh ``arrays`` and
        ``history`` at epoch 0, or the latest checkpoint's (with the fresh
        ``"config"``) at the epoch after it; ``checkpointer`` is ``None`` without
        ``checkpoint_dir``.
    """
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
            raise ValueError(
                f"cannot resume {checkpoint_dir}: it holds {latest + 1} trained epochs, more than the "
                f"{config['epochs']} asked (its best epoch would not be this run's); resume with at "
                f"least {latest + 1} epochs or choose another run directory"
            )
    arrays, history = checkpointer.restore(latest, arrays)
    if config is not None:
        history["config"] = config
    return checkpointer, arrays, history, latest + 1
