"""Input checks shared by all weight-space models."""

from __future__ import annotations

from dwsjax.weights import MLPSpec, WeightSpace, check_weight_space


def _shapes(ws: WeightSpace) -> str:
    return ", ".join(
        f"W{i}{tuple(w.shape)} b{i}{tuple(b.shape)}" for i, (w, b) in enumerate(zip(ws.weights, ws.biases))
    )


def check_model_input(ws: WeightSpace, spec: MLPSpec) -> int:
    """Check that ``ws`` is a batch ``(B,)`` of weight spaces of ``spec``; return ``B``."""
    try:
        batch = check_weight_space(ws, spec)
    except ValueError as err:
        raise ValueError(
            f"model expects weight spaces of architecture {spec}, got leaves {_shapes(ws)}: {err}"
        ) from None
    if len(batch) != 1:
        raise ValueError(
            f"model expects one batch axis (B,) on every leaf of architecture {spec}, got batch "
            f"shape {batch}; reshape extra batch axes into B first"
        )
    return batch[0]
