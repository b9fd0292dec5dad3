"""Input-space augmentations: the INR of a transformed object (Shamsian et al., Sec. 4).

An affine change of coordinates folds into the first layer: if
``f'(x) = f(x @ M + t)`` then ``W_0' = M @ W_0`` and ``b_0' = b_0 + t @ W_0``.
Each augmentation samples ``(M, t)`` for the INR's input dimension (2 for
images, 3 for SDFs) and applies :func:`transform_inputs`; ``sample_*`` give the
same ``(M, t)`` for a key, so the transformed coordinates can be rendered.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from dwsjax.weights import WeightSpace


def transform_inputs(ws: WeightSpace, matrix: jax.Array, shift: jax.Array) -> WeightSpace:
    """Weights of ``x -> f(x @ matrix + shift)``; ``matrix`` ``(d, d)``, ``shift`` ``(d,)``."""
    w0, b0 = ws.weights[0], ws.biases[0]
    return WeightSpace(
        (matrix.astype(w0.dtype) @ w0,) + ws.weights[1:],
        (b0 + shift.astype(w0.dtype) @ w0,) + ws.biases[1:],
    )


def input_dim(ws: WeightSpace) -> int:
    return ws.weights[0].shape[-2]


def sample_translation(key: jax.Array, dim: int, max_shift: float = 0.25):
    """``M = I``, ``t ~ U(-max_shift, max_shift)`` per axis."""
    return jnp.eye(dim), jax.random.uniform(key, (dim,), minval=-max_shift, maxval=max_shift)


def sample_rotation(key: jax.Array, dim: int, max_angle_deg: float = 30.0):
    """2D: angle ``~ U(-max, max)``; 3D: a uniformly random rotation (unit quaternion)."""
    if dim == 2:
        angle = jax.random.uniform(key, minval=-1.0, maxval=1.0) * math.radians(max_angle_deg)
        c, s = jnp.cos(angle), jnp.sin(angle)
        matrix = jnp.array([[c, s], [-s, c]])
    elif dim == 3:
        q = jax.random.normal(key, (4,))
        w, x, y, z = q / jnp.linalg.norm(q)
        matrix = jnp.array(
            [
                [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
            ]
        )
    else:
        raise ValueError(f"rotation needs 2D or 3D inputs, got input dimension {dim}")
    return matrix, jnp.zeros((dim,))


def sample_scale(key: jax.Array, dim: int, low: float = 0.8, high: float = 1.2):
    """``M = c I`` with ``c ~ U(low, high)``."""
    return jax.random.uniform(key, minval=low, maxval=high) * jnp.eye(dim), jnp.zeros((dim,))


def translate(key: jax.Array, ws: WeightSpace, max_shift: float = 0.25) -> WeightSpace:
    """Translation: the INR of the shifted object, ``f'(x) = f(x + t)``, ``t ~ U(-max_shift, max_shift)^d``.

    Folds into the first layer: ``b_0' = b_0 + t @ W_0`` (Shamsian et al., Sec. 4).

    Args:
        key: PRNG key.
        ws: One INR (unbatched) with ``d`` input dimensions.
        max_shift: Largest shift per axis, in the coordinates' units (``[-1, 1]`` spans the object).

    Returns:
        The weight space of the translated INR.
    """
    return transform_inputs(ws, *sample_translation(key, input_dim(ws), max_shift))


def rotate(key: jax.Array, ws: WeightSpace, max_angle_deg: float = 30.0) -> WeightSpace:
    """Rotation: the INR of the rotated object, ``f'(x) = f(x @ R)``.

    Folds into the first layer: ``W_0' = R @ W_0``. 2D: angle ``~ U(-max_angle_deg, max_angle_deg)``;
    3D: a uniformly random rotation (unit quaternion).

    Args:
        key: PRNG key.
        ws: One INR (unbatched) with 2 or 3 input dimensions.
        max_angle_deg: Largest 2D angle in degrees (unused in 3D).

    Returns:
        The weight space of the rotated INR.

    Raises:
        ValueError: If the input dimension is not 2 or 3.
    """
    return transform_inputs(ws, *sample_rotation(key, input_dim(ws), max_angle_deg))


def scale(key: jax.Array, ws: WeightSpace, low: float = 0.8, high: float = 1.2) -> WeightSpace:
    """Scaling: ``f'(x) = f(c x)``, ``c ~ U(low, high)`` (the augmentation code's ``1 + 0.2 U(-1, 1)``).

    Folds into the first layer: ``W_0' = c W_0``.

    Args:
        key: PRNG key.
        ws: One INR (unbatched).
        low: Smallest scale.
        high: Largest scale.

    Returns:
        The weight space of the scaled INR.
    """
    return transform_inputs(ws, *sample_scale(key, input_dim(ws), low, high))
