"""Markdown formatting shared by the results tables."""

from __future__ import annotations

import numpy as np


def mean_pm_std(values) -> str:
    """``"mean ± std"`` of ``values`` to one decimal; just the value when there is one (no spread to show)."""
    values = np.asarray(values, float)
    return f"{values.mean():.1f}" if len(values) == 1 else f"{values.mean():.1f} ± {values.std():.1f}"


def inr_recipe_name(row: dict) -> str:
    """A results row's INR recipe, e.g. ``dwsnets-fast``, with ``, shared init`` for INRs fitted from one init
    (``inr_init``; rows written before it existed are of independent inits)."""
    return f"{row['inr_recipe']}{', shared init' if row.get('inr_init') == 'shared' else ''}"
