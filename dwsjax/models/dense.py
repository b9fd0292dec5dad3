"""Dense layers on the last axis of high-rank activations."""

from __future__ import annotations

import flax.linen as nn
import jax


def dense_last_axis(dense: nn.Dense, x: jax.Array) -> jax.Array:
    """Apply ``dense`` to the last axis through a 2-D matmul ``(rows, F) @ (F, F')``.

    Same result as ``dense(x)``; XLA's CPU backward of a dot with several
    batch-like axes is several times slower than that of the 2-D matmul.
    """
    return dense(x.reshape(-1, x.shape[-1])).reshape(x.shape[:-1] + (-1,))
