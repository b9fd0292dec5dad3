"""Build INR datasets: fit every object of a dataset split into a resumable :class:`InrStore`."""

from __future__ import annotations

import math
import os
from typing import NamedTuple

import numpy as np
from tqdm.auto import tqdm

from dwsjax.data import load_targets
from dwsjax.fit import FitConfig, fit_sirens, inr_keys
from dwsjax.presets import preset
from dwsjax.recipes import DEFAULT_RECIPE, fit_recipe
from dwsjax.store import InrStore, fit_status


class InrDatasetConfig(NamedTuple):
    """Everything that decides the content of an INR store (its identity).

    ``recipe`` names a :mod:`dwsjax.recipes` fitting recipe; ``steps``,
    ``learning_rate`` and ``target_psnr`` override its values when not ``None``.
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

    def fit_config(self, chunk_size: int = 8) -> FitConfig:
        p = preset(self.dataset)
        recipe = fit_recipe(self.recipe, p.kind)
        overrides = {"steps": self.steps, "learning_rate": self.learning_rate, "target_psnr": self.target_psnr}
        recipe = recipe._replace(**{k: v for k, v in overrides.items() if v is not None})
        return FitConfig.from_recipe(p.spec, recipe, p.data_range, chunk_size)

    def identity(self) -> dict:
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
            **fit,
        }


def build_inr_store(
    out_dir: str | os.PathLike,
    config: InrDatasetConfig,
    objects: int | None = None,
    data_dir: str | os.PathLike | None = None,
    chunk_size: int = 8,
    progress: bool = True,
) -> InrStore:
    """Fit ``views`` SIRENs for each of the first ``objects`` objects, shard by shard.

    Shards already in the store are skipped, so a killed run continues where it
    stopped; an existing store with another identity is refused.
    """
    if config.views < 1:
        raise ValueError(f"views must be >= 1, got {config.views}")
    store = InrStore.create_or_resume(out_dir, config.identity())
    targets = load_targets(
        config.dataset, config.split, data_dir, limit=objects, seed=config.seed, n_points=config.n_points
    )
    store.update_metadata(
        class_names=list(targets.class_names), kind=targets.kind, object_shape=list(targets.shape)
    )
    fit_config = config.fit_config(chunk_size)
    n_objects = len(targets.labels)
    per_shard = config.shard_objects
    pending = []
    for index in range(math.ceil(n_objects / per_shard)):
        count = (min(n_objects, (index + 1) * per_shard) - index * per_shard) * config.views
        done = store.manifest["shards"].get(str(index))
        if done is None or done["count"] < count:  # a fuller shard (more objects) already holds these
            pending.append(index)
    bar = tqdm(
        total=sum(min(per_shard, n_objects - i * per_shard) * config.views for i in pending),
        unit="INR",
        desc=f"fit {config.dataset}/{config.split}",
        disable=not progress,
    )
    for index in pending:
        objs = np.arange(index * per_shard, min(n_objects, (index + 1) * per_shard))
        obj_rows = np.repeat(objs, config.views)
        views = np.tile(np.arange(config.views), len(objs))
        coords = targets.coords if targets.coords.ndim == 2 else targets.coords[obj_rows]
        values = targets.values[obj_rows]
        keys = inr_keys(config.seed, targets.object_ids[obj_rows], views)
        result = fit_sirens(keys, coords, values, fit_config)
        mse = np.asarray(result.mse)
        records = {
            "labels": targets.labels[obj_rows],
            "object_ids": targets.object_ids[obj_rows],
            "view_ids": views,
            "mse": mse,
            "psnr": np.asarray(result.psnr),
            "steps": np.asarray(result.steps),
            "status": fit_status(mse, values.var(axis=(1, 2))),
        }
        store.write_shard(index, records, result.weights)
        bad = int((records["status"] != "ok").sum())
        bar.update(len(obj_rows))
        bar.set_postfix(psnr=f"{records['psnr'].mean():.1f}", failed=bad)
    bar.close()
    return store
