"""Build INR datasets: fit every object of a dataset split into a resumable :class:`InrStore`."""

from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from dwsjax.data import FitTargets, load_targets
from dwsjax.devices import process_worker
from dwsjax.files import LOCK, exclusive_lock, removed_on_failure
from dwsjax.fit import FitConfig, fit_sirens, inr_keys
from dwsjax.presets import preset
from dwsjax.recipes import DEFAULT_RECIPE, INR_INITS, fit_recipe
from dwsjax.shape_quality import shape_quality
from dwsjax.store import MANIFEST, MANIFEST_LOCK, InrStore, fit_status
from dwsjax.weights import flatten_weights

PART_OBJECTS = 64


class InrDatasetConfig(NamedTuple):
    """Everything that decides the content of an INR store (its identity).

    ``recipe`` names a :mod:`dwsjax.recipes` fitting recipe; ``steps``,
    ``learning_rate`` and ``target_psnr`` override its values when not ``None``.

    Attributes:
        dataset: A dataset of :func:`dwsjax.data.load_targets` (``"fmnist"``, ``"synthetic2d"``, ...);
            its preset (:mod:`dwsjax.presets`) gives the SIREN architecture.
        split: ``"train"`` or ``"test"``.
        views: INRs per object, fitted from different inits.
        seed: Seed of the inits (:func:`dwsjax.fit.inr_keys`) and of 3D point sampling.
        recipe: Fitting recipe name (:data:`dwsjax.recipes.RECIPES`).
        steps: Overrides the recipe's step cap.
        learning_rate: Overrides the recipe's learning rate.
        target_psnr: Overrides the recipe's early-stopping PSNR.
        shard_objects: Objects per shard file.
        n_points: Sampled locations per 3D shape.
        init: ``"independent"`` inits per INR (the papers') or ``"shared"`` by all objects
            (:func:`dwsjax.fit.inr_keys`).
    """

    dataset: str
    split: str
    views: int = 1
    seed: int = 0
    recipe: str = DEFAULT_RECIPE
    steps: int | None = None
    learning_rate: float | None = None
    target_psnr: float | None = None
    shard_objects: int = 256
    n_points: int = 4096
    init: str = "independent"

    def fit_config(self, chunk_size: int = 8) -> FitConfig:
        """The :class:`dwsjax.fit.FitConfig` these settings fit with.

        Args:
            chunk_size: INRs that step together on one device.

        Returns:
            The dataset preset's architecture and data range with the recipe and its overrides.

        Raises:
            ValueError: If the dataset or recipe is unknown.
        """
        p = preset(self.dataset)
        recipe = fit_recipe(self.recipe, p.kind)
        overrides = {"steps": self.steps, "learning_rate": self.learning_rate, "target_psnr": self.target_psnr}
        recipe = recipe._replace(**{k: v for k, v in overrides.items() if v is not None})
        return FitConfig.from_recipe(p.spec, recipe, p.data_range, chunk_size)

    def identity(self) -> dict:
        if self.init not in INR_INITS:
            raise ValueError(f"INR init must be one of {sorted(INR_INITS)}, got {self.init!r}")
        fit = self.fit_config().to_json()
        fit.pop("chunk_size")
        shape = preset(self.dataset).kind == "shape"
        data = {"n_points": self.n_points, "object_order": "shuffled"} if shape else {}
        return {
            "dataset": self.dataset,
            "split": self.split,
            "views": self.views,
            "seed": self.seed,
            "shard_objects": self.shard_objects,
            "data": data,
            "recipe": self.recipe,
            "init_keys": INR_INITS[self.init],
            **fit,
        }


def fit_rows(
    targets: FitTargets, rows: np.ndarray, views: np.ndarray, config: InrDatasetConfig, fit_config: FitConfig
) -> dict[str, np.ndarray]:
    """Fit one SIREN per ``(targets row, view)`` pair of ``config.split`` from the inits of ``config``:
    the store's columns (:data:`dwsjax.store.SHARD_COLUMNS`), ``weights`` flat ``(n, num_params)``."""
    coords = targets.coords if targets.coords.ndim == 2 else targets.coords[rows]
    values = targets.values[rows]
    result = fit_sirens(
        inr_keys(config.seed, targets.object_ids[rows], views, config.split, config.init), coords, values, fit_config
    )
    mse = np.asarray(result.mse)
    quality = (
        {}
        if targets.surface is None
        else shape_quality(
            result.weights,
            targets.holdout_coords[rows],
            targets.holdout_values[rows],
            targets.surface[rows],
            targets.kind == "sdf",
            fit_config.output_offset,
        )
    )
    return {
        **quality,
        "weights": np.asarray(flatten_weights(result.weights), np.float32),
        "labels": targets.labels[rows],
        "object_ids": targets.object_ids[rows],
        "view_ids": views,
        "mse": mse,
        "psnr": np.asarray(result.psnr),
        "steps": np.asarray(result.steps),
        "status": fit_status(mse, values.var(axis=(1, 2))),
    }


def quality_postfix(columns: dict[str, np.ndarray]) -> dict[str, str]:
    """Progress-bar fields of a part's 3D quality columns (:mod:`dwsjax.shape_quality`), if it has them."""
    shown = {"sign_accuracy": ("sign", "{:.3f}"), "chamfer": ("chamfer", "{:.4f}")}
    return {
        label: fmt.format(np.nanmean(columns[k]))
        for k, (label, fmt) in shown.items()
        if k in columns and np.isfinite(columns[k]).any()
    }


def holds_inrs(columns: dict[str, np.ndarray] | None, object_ids: np.ndarray, view_ids: np.ndarray) -> bool:
    """Whether stored ``columns`` (e.g. a part file of an earlier run) are the INRs of these objects and views."""
    return (
        columns is not None
        and np.array_equal(columns["object_ids"], object_ids)
        and np.array_equal(columns["view_ids"], view_ids)
    )


def build_inr_store(
    out_dir: str | os.PathLike,
    config: InrDatasetConfig,
    objects: int | None = None,
    data_dir: str | os.PathLike | None = None,
    chunk_size: int = 8,
    progress: bool = True,
    worker: tuple[int, int] | None = None,
) -> InrStore:
    """Fit ``views`` SIRENs for each of the first ``objects`` objects, shard by shard.

    Shards already in the store are skipped, so a killed run continues where it
    stopped; an existing store with another identity is refused. Listed shards
    whose file is missing or damaged are dropped with a warning and refitted
    (those beyond the requested objects are only dropped). A shard is fitted in
    parts of at most :data:`PART_OBJECTS` objects, each written to its own file as
    soon as it is fitted and reused by a rerun, so a kill loses at most
    ``PART_OBJECTS * views`` fitted INRs. A failed call that created the store
    directory and fitted nothing removes it again.

    Several processes share the work: with ``worker = (i, n)`` a process fits
    the shards whose index is ``i`` modulo ``n``, then waits until the others
    have recorded theirs. By default every process of a ``jax.distributed`` job
    is a worker (``jax.process_index()``, ``jax.process_count()``), so ``n``
    hosts sharing a file system fit a store ``n`` times faster, and a rerun
    refits the shards of a killed job. A single process holds the store's lock
    while it fits: a second one started meanwhile waits, then reuses the result.

    Args:
        out_dir: The store's directory (created if absent).
        config: Dataset, split, views, seed and fitting recipe: the store's identity.
        objects: Fit the first ``objects`` objects of the split (default: all).
        data_dir: Dataset root (default: ``$DWSJAX_DATA_DIR``; :func:`dwsjax.data.load_targets`).
        chunk_size: INRs that step together on one device.
        progress: Show a progress bar.
        worker: ``(index, count)`` of this process among those fitting the store together.

    Returns:
        The :class:`InrStore`; ``store.load()`` gives its INRs as an :class:`InrBatch`.

    Raises:
        ValueError: If ``views < 1``, the store at ``out_dir`` has another identity, the split holds
            fewer than ``objects`` objects, or the dataset or recipe is unknown.
        FileNotFoundError: If the dataset's files are missing.
    """
    if config.views < 1:
        raise ValueError(f"views must be >= 1, got {config.views}")
    index, count = process_worker(worker)
    alone = exclusive_lock(out_dir, "fitting this INR store") if count == 1 else contextlib.nullcontext()
    with removed_on_failure(out_dir, disposable=(MANIFEST, LOCK, MANIFEST_LOCK)), alone:
        store = InrStore.create_or_resume(out_dir, config.identity())
        targets = load_targets(
            config.dataset, config.split, data_dir, limit=objects, seed=config.seed, n_points=config.n_points
        )
        if objects is not None and len(targets.labels) < objects:
            raise ValueError(
                f"{config.dataset}/{config.split} holds {len(targets.labels)} objects, fewer than the {objects} "
                "asked for: ask for fewer objects (--train-objects + --val-objects come from the train split, "
                "--test-objects from the test split) or point --data-dir (or DWSJAX_DATA_DIR) at the full dataset"
            )
        store.update_metadata(
            class_names=list(targets.class_names),
            kind=targets.kind,
            object_shape=list(targets.shape),
            activation="sine",
        )
        fit_missing_shards(store, targets, config, config.fit_config(chunk_size), progress, (index, count))
        wait_for_shards(store, len(targets.labels), config)
    return store


def wait_for_shards(store: InrStore, n_objects: int, config: InrDatasetConfig, poll_seconds: float = 1.0) -> None:
    """Return once ``store``'s manifest on disk lists every shard of the first ``n_objects`` objects
    (those other workers fit)."""
    while True:
        store.reload()
        if not pending_shards(store.manifest["shards"], n_objects, config):
            return
        time.sleep(poll_seconds)


def shard_inrs(index: int, n_objects: int, config: InrDatasetConfig) -> int:
    """INRs of shard ``index`` when a store holds the first ``n_objects`` objects (a last shard is partial)."""
    per_shard = config.shard_objects
    return (min(n_objects, (index + 1) * per_shard) - index * per_shard) * config.views


def pending_shards(done: dict[str, dict], n_objects: int, config: InrDatasetConfig) -> list[int]:
    """Indices of the shards of the first ``n_objects`` objects that a store's manifest entries ``done``
    (``{"<index>": {"count": INRs, ...}}``) lack or hold fewer INRs of (a fuller shard, of more objects,
    already holds them)."""
    return [
        index
        for index in range(math.ceil(n_objects / config.shard_objects))
        if str(index) not in done or done[str(index)]["count"] < shard_inrs(index, n_objects, config)
    ]


def missing_inrs(root: str | os.PathLike, config: InrDatasetConfig, n_objects: int) -> int:
    """How many INRs :func:`build_inr_store` would fit for the first ``n_objects`` objects into the store
    at ``root`` (all of them when there is none); reads only the manifest."""
    done = InrStore.open(root).manifest["shards"] if (Path(root) / MANIFEST).exists() else {}
    return sum(shard_inrs(i, n_objects, config) for i in pending_shards(done, n_objects, config))


def fit_missing_shards(
    store: InrStore,
    targets: FitTargets,
    config: InrDatasetConfig,
    fit_config: FitConfig,
    progress: bool,
    worker: tuple[int, int] = (0, 1),
) -> None:
    """Repair ``store``, then fit every shard of ``targets`` it lacks that is ``worker``'s, part by part
    (see :func:`build_inr_store`)."""
    n_objects = len(targets.labels)
    per_shard = config.shard_objects
    for index, problem in store.repair().items():
        first = index * per_shard
        action = (
            f"refitting objects {first}..{min(n_objects, first + per_shard) - 1}"
            if first < n_objects
            else (f"dropped, not refitted: it lies beyond the {n_objects} objects asked for")
        )
        warnings.warn(
            f"INR store {store.root}: {store.shard_path(index).name} is damaged: {problem}; {action}", stacklevel=3
        )
    missing = pending_shards(store.manifest["shards"], n_objects, config)
    for index in set(range(math.ceil(n_objects / per_shard))) - set(missing):
        store.remove_parts(index)  # leftovers of a shard that is done
    pending = [i for i in missing if i % worker[1] == worker[0]]
    bar = tqdm(
        total=sum(shard_inrs(i, n_objects, config) for i in pending),
        unit="INR",
        desc=f"fit {config.dataset}/{config.split}",
        disable=not progress,
    )
    for index in pending:
        objs = np.arange(index * per_shard, min(n_objects, (index + 1) * per_shard))
        parts = []
        for part, start in enumerate(range(0, len(objs), PART_OBJECTS)):
            rows = np.repeat(objs[start : start + PART_OBJECTS], config.views)
            views = np.tile(np.arange(config.views), len(rows) // config.views)
            columns = store.read_part(index, part)
            if not holds_inrs(columns, targets.object_ids[rows], views):
                columns = fit_rows(targets, rows, views, config, fit_config)
                store.write_part(index, part, columns)
            parts.append(columns)
            bar.update(len(rows))
            bar.set_postfix(
                psnr=f"{columns['psnr'].mean():.1f}",
                failed=int((columns["status"] != "ok").sum()),
                **quality_postfix(columns),
            )
        store.finish_shard(index, parts)
    bar.close()
