"""How well 3D INRs hold their shapes: figures on held-out queries and the surface.

For an INR ``f`` fitted to a shape's signed (SDF) or unsigned (UDF) distance:

* **sign accuracy** (SDF only): the fraction of held-out query points ``x`` with
  ``sign f(x) = sign d(x)``, ``d`` the reference distance;
* **near-surface error**: ``mean |f(x) - d(x)|`` over held-out queries with
  ``|d(x)| < band`` (default 0.05, 2.5 % of the ``[-1, 1]`` cube);
* **Chamfer distance** between the INR's near-zero level set ``S`` (the points of
  an ``r^3`` grid over ``[-1, 1]^3`` with ``|f| < tau``, ``tau`` half the grid
  spacing) and the shape's points ``Q``:
  ``CD = (mean_{s in S} min_q |s - q| + mean_{q in Q} min_s |q - s|) / 2``;
  ``inf`` when ``S`` is empty.

Held-out queries are drawn like the fitting samples but from their own random
stream (:func:`dwsjax.data.shapes.holdout_samples`), so they are points the INR
never saw.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree

from dwsjax.siren import grid_coords, siren_apply
from dwsjax.weights import WeightSpace

NEAR_BAND = 0.05
QUALITY_COLUMNS = ("sign_accuracy", "near_error", "chamfer")


def sign_accuracy(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """``(N, P)`` predicted and reference signed distances -> ``(N,)`` fraction of equal signs."""
    return np.mean(np.sign(pred) == np.sign(true), axis=-1)


def near_surface_error(pred: np.ndarray, true: np.ndarray, band: float = NEAR_BAND) -> np.ndarray:
    """``(N, P)`` -> ``(N,)`` mean absolute error where ``|true| < band`` (NaN where no query is that near)."""
    near = np.abs(true) < band
    total = np.sum(np.abs(pred - true) * near, axis=-1)
    count = near.sum(axis=-1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def chamfer_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Symmetric Chamfer distance of point sets ``(A, 3)`` and ``(B, 3)`` (mean of both directions);
    ``inf`` when either is empty."""
    if len(a) == 0 or len(b) == 0:
        return float("inf")
    return float((cKDTree(b).query(a)[0].mean() + cKDTree(a).query(b)[0].mean()) / 2)


def level_set_points(values: np.ndarray, resolution: int) -> list[np.ndarray]:
    """Grid points with ``|f| < tau`` (half the grid spacing) per INR: ``(N, r^3)`` -> ``N`` arrays ``(S_n, 3)``."""
    grid = np.asarray(grid_coords(resolution, 3))
    tau = 1.0 / (resolution - 1)
    return [grid[np.abs(v) < tau] for v in values]


@jax.jit
def _evaluate(ws: WeightSpace, coords: jax.Array) -> jax.Array:
    return siren_apply(ws, coords)[..., 0]


def shape_quality(
    ws: WeightSpace,
    holdout_coords: np.ndarray,
    holdout_values: np.ndarray,
    surfaces: np.ndarray,
    signed: bool,
    output_offset: float = 0.0,
    resolution: int = 32,
) -> dict[str, np.ndarray]:
    """Quality columns (:data:`QUALITY_COLUMNS`) of a batch of 3D INRs, each ``(N,)`` float32.

    Args:
        ws: INR weights with batch ``(N,)``.
        holdout_coords: held-out query points ``(N, P, 3)``.
        holdout_values: their reference distances ``(N, P)`` or ``(N, P, 1)``.
        surfaces: the shapes' points ``(N, M, 3)`` (normalised as for fitting).
        signed: whether the distances are signed (sign accuracy is NaN otherwise).
        output_offset: the recipe's offset ``c`` of ``f(x) + c``.
        resolution: grid size ``r`` of the level set.

    Returns:
        ``{"sign_accuracy", "near_error", "chamfer"}``.
    """
    true = np.asarray(holdout_values).reshape(len(surfaces), -1)
    pred = np.asarray(_evaluate(ws, jnp.asarray(holdout_coords))) + output_offset
    grid_values = np.asarray(_evaluate(ws, grid_coords(resolution, 3))) + output_offset
    chamfer = [chamfer_distance(s, q) for s, q in zip(level_set_points(grid_values, resolution), surfaces)]
    return {
        "sign_accuracy": (sign_accuracy(pred, true) if signed else np.full(len(true), np.nan)).astype(np.float32),
        "near_error": near_surface_error(pred, true).astype(np.float32),
        "chamfer": np.asarray(chamfer, np.float32),
    }
