"""Function-space probe: how much of the class an INR dataset's functions hold.

A linear softmax classifier is trained on each INR's function sampled on a
grid (images: the rendered pixels; shapes: the distance field on an ``r^3``
grid over ``[-1, 1]^3``), and, as a reference, on the source data sampled on
the same grid (pixels; the occupancy of the normalised shape's points in the
``r^3`` cells). Its test accuracy is a floor on what the INRs' weights hold
about the class: a weight-space model far below it loses what its inputs
carry, while a low probe says the INRs (or the data) lack it.

The classifier: features standardised with the training set's mean and std,
``p(y | x) = softmax(x A + c)``, full-batch Adam on cross-entropy plus
``weight_decay * |A|^2 / 2``; the weight decay is chosen from a small grid by
validation accuracy.

:class:`FunctionProbeConfig` and :func:`run_function_probe` run it on the
splits and INR stores of a classification run (``experiments.function_probe``
is its command line).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dwsjax.data import shapes
from dwsjax.data.sources import find_dataset_dir
from dwsjax.data.targets import load_targets
from dwsjax.presets import preset
from dwsjax.run import CommonConfig, load_splits, resolve_protocol, setting
from dwsjax.siren import render_image, render_sdf
from dwsjax.weights import WeightSpace

WEIGHT_DECAYS = (1e-4, 1e-3, 1e-2, 1e-1)


class ProbeResult(NamedTuple):
    """Accuracies of the chosen linear classifier and its weight decay."""

    train_accuracy: float
    val_accuracy: float
    test_accuracy: float
    weight_decay: float


def rendered_functions(
    ws: WeightSpace, kind: str, resolution: tuple[int, ...], output_offset: float = 0.0, chunk: int = 256
) -> np.ndarray:
    """Each INR's function on a grid, flattened: ``(N, F)`` float32.

    Args:
        ws: INR weights with batch ``(N,)``.
        kind: ``"image"`` (``resolution = (H, W)``, ``F = H W C``) or ``"shape"``
            (``resolution = (r,)``, ``F = r^3`` values on :func:`dwsjax.siren.grid_coords`).
        output_offset: the recipe's offset ``c`` of ``f(x) + c``.
        chunk: INRs rendered per call.

    Returns:
        ``(N, F)`` sampled functions.
    """
    if kind == "image":
        render = jax.jit(lambda w: render_image(w, *resolution, output_offset=output_offset))
    elif kind == "shape":
        render = jax.jit(lambda w: render_sdf(w, resolution[0], output_offset=output_offset))
    else:
        raise ValueError(f'kind must be "image" or "shape", got {kind!r}')
    n = ws.weights[0].shape[0]
    parts = [np.asarray(render(jax.tree.map(lambda x: x[i : i + chunk], ws))) for i in range(0, n, chunk)]
    return np.concatenate(parts).reshape(n, -1).astype(np.float32)


def occupancy_grid(points: np.ndarray, resolution: int) -> np.ndarray:
    """Which of ``r^3`` cells over ``[-1, 1]^3`` hold points: ``(N, M, 3) -> (N, r^3)`` of 0/1."""
    cells = np.clip(((points + 1) / 2 * resolution).astype(int), 0, resolution - 1)
    flat = (cells[..., 0] * resolution + cells[..., 1]) * resolution + cells[..., 2]
    grid = np.zeros((len(points), resolution**3), np.float32)
    np.put_along_axis(grid, flat, 1.0, axis=1)
    return grid


def source_features(
    dataset: str, split: str, object_ids: np.ndarray, resolution: int, data_dir: str | None = None
) -> np.ndarray:
    """The source data of objects ``object_ids`` on the probe's grid: ``(N, F)``.

    Images: their pixels in ``[0, 1]``. ModelNet: the occupancy (:func:`occupancy_grid`)
    of the shape's points after :func:`dwsjax.data.shapes.normalise_shapes`, the
    normalisation the INRs were fitted in.
    """
    object_ids = np.asarray(object_ids)
    if dataset in ("fmnist", "mnist", "cifar10", "synthetic2d"):
        values = load_targets(dataset, split, data_dir, limit=int(object_ids.max()) + 1).values
        return values[object_ids].reshape(len(object_ids), -1)
    if dataset == "modelnet10":
        path = Path(find_dataset_dir(dataset, data_dir, ["modelnet10_pcd1024.npz"])) / "modelnet10_pcd1024.npz"
        clouds = shapes.load_modelnet10_points(path, split)
    elif dataset == "modelnet40":
        directory = find_dataset_dir(dataset, data_dir, [f"modelnet40_{split}.txt", "modelnet40_shape_names.txt"])
        clouds = shapes.load_modelnet40_points(directory, split)
    else:
        raise ValueError(
            f"no source data probe for {dataset!r}; it covers fmnist, mnist, cifar10, synthetic2d, "
            "modelnet10 and modelnet40"
        )
    row = {int(i): r for r, i in enumerate(clouds.object_ids)}
    missing = [int(i) for i in object_ids if int(i) not in row]
    if missing:
        raise ValueError(
            f"{dataset} {split}: objects {missing[:5]} are not in the source data; "
            "point --data-dir at the directory the INRs were fitted from"
        )
    points = shapes.normalise_shapes(clouds.points[[row[int(i)] for i in object_ids]])
    return occupancy_grid(points, resolution)


def image_resolution(dataset: str, data_dir: str | None = None) -> tuple[int, int]:
    """``(H, W)`` of a dataset's images."""
    return tuple(load_targets(dataset, "test", data_dir, limit=1).shape[:2])


@jax.jit
def _fit_linear(x, y_onehot, weight_decay, key):
    """Full-batch Adam (lr 1e-2, 500 steps) on softmax cross-entropy plus ``weight_decay |A|^2 / 2``."""
    params = {"A": jnp.zeros((x.shape[1], y_onehot.shape[1])), "c": jnp.zeros(y_onehot.shape[1])}
    tx = optax.adam(1e-2)

    def loss(p):
        logits = x @ p["A"] + p["c"]
        return jnp.mean(optax.softmax_cross_entropy(logits, y_onehot)) + weight_decay * jnp.sum(p["A"] ** 2) / 2

    def step(carry, _):
        p, s = carry
        updates, s = tx.update(jax.grad(loss)(p), s, p)
        return (optax.apply_updates(p, updates), s), None

    (params, _), _ = jax.lax.scan(step, (params, tx.init(params)), None, length=500)
    return params


def linear_probe(
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    weight_decays: tuple[float, ...] = WEIGHT_DECAYS,
) -> ProbeResult:
    """Train the linear classifier on ``train`` for each weight decay; keep the best on ``val``.

    Args:
        train, val, test: ``(features (N, F), labels (N,))`` pairs.
        num_classes: number of classes ``C``.
        weight_decays: the grid searched.

    Returns:
        :class:`ProbeResult` of the weight decay with the best validation accuracy (ties: the smaller).

    Raises:
        ValueError: non-finite features (a diverged INR renders NaN or inf).
    """
    for name, (x, _) in (("train", train), ("val", val), ("test", test)):
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{name} features hold NaN or inf (a diverged INR?); drop those INRs first")
    mean, std = train[0].mean(0), train[0].std(0) + 1e-6
    scaled = [((x - mean) / std, y) for x, y in (train, val, test)]
    onehot = jax.nn.one_hot(scaled[0][1], num_classes)

    def accuracy(p, x, y) -> float:
        return float(np.mean(np.argmax(np.asarray(x @ p["A"] + p["c"]), -1) == y))

    best = None
    for decay in weight_decays:
        p = _fit_linear(jnp.asarray(scaled[0][0]), onehot, decay, jax.random.key(0))
        result = ProbeResult(*(accuracy(p, x, y) for x, y in scaled), weight_decay=decay)
        if best is None or result.val_accuracy > best.val_accuracy:
            best = result
    return best


@dataclass(frozen=True)
class FunctionProbeConfig(CommonConfig):
    """The splits and INR stores of a classification run (:class:`~dwsjax.run.CommonConfig`: dataset,
    objects, INR recipe; its training settings are unused) and the 3D grid size."""

    grid: int = setting(16, help="3D: distance field and occupancy on grid^3 points")


def run_function_probe(config: FunctionProbeConfig) -> dict:
    """Fit (or reuse) the config's INR stores, then probe the INRs' rendered functions and the source data.

    Args:
        config: the splits (train objects, validation objects carved from train, test objects) and stores.

    Returns:
        One results row: the split sizes, INR recipe, steps and mean PSNR of the training store, the
        grid, and train/test accuracy of :func:`linear_probe` on the INRs and on the source data.
    """
    config = resolve_protocol(config)
    train, val, test, train_store = load_splits(config)
    kind = preset(config.dataset).kind
    resolution = image_resolution(config.dataset, config.data_dir) if kind == "image" else (config.grid,)
    num_classes = len(train_store.metadata["class_names"])
    inr = [
        (rendered_functions(b.weights, kind, resolution, train_store.output_offset), b.labels)
        for b in (train, val, test)
    ]
    source = [
        (source_features(config.dataset, split, b.object_ids, config.grid, config.data_dir), b.labels)
        for b, split in ((train, "train"), (val, "train"), (test, "test"))
    ]
    on_inrs, on_source = linear_probe(*inr, num_classes), linear_probe(*source, num_classes)
    return {
        "dataset": config.dataset,
        "train_objects": len(train.labels),
        "val_objects": len(val.labels),
        "test_objects": len(test.labels),
        "inr_recipe": config.inr_recipe,
        "inr_init": config.inr_init,
        "inr_steps": train_store.identity["steps"],
        "inr_points": config.inr_points if kind == "shape" else "",
        "grid": "x".join(map(str, resolution)),
        "inr_store_psnr": round(train_store.summary()["mean_psnr"], 2),
        "inr_store": train_store.root.name,
        "inr_test_accuracy": on_inrs.test_accuracy,
        "inr_train_accuracy": on_inrs.train_accuracy,
        "source_test_accuracy": on_source.test_accuracy,
        "source_train_accuracy": on_source.train_accuracy,
    }
