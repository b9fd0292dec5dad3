"""Markdown formatting shared by the results tables."""

from __future__ import annotations

import numpy as np


def mean_pm_std(values) -> str:
    """``"mean ± std"`` of ``values`` to one decimal; just the value when there is one (no spread to show)."""
    values = np.asarray(values, float)
    return f"{values.mean():.1f}" if len(values) == 1 else f"{values.mean():.1f} ± {values.std():.1f}"
