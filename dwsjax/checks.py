"""Input checks of training runs: epochs, finite INRs, labels, normalisation statistics.

Each refuses its input with a message that names the offending INRs and says
how to fix them, before anything is compiled or trained.
"""

from __future__ import annotations

import jax
import numpy as np

from dwsjax.store import InrBatch
from dwsjax.weights import WeightSpace, WeightStats, finite_rows, weight_stats


def _listed(values: np.ndarray, limit: int = 10) -> str:
    shown = ", ".join(str(v) for v in values[:limit].tolist())
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


def check_epochs(epochs: int) -> None:
    """Refuse fewer than one epoch."""
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
