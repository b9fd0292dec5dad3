"""SIRENs (Sitzmann et al. 2020) as pure functions over :class:`WeightSpace`.

A SIREN with spec ``(d_0, ..., d_L)`` computes
``h_{i+1} = sin(w0 * (h_i @ W_i + b_i))`` for the hidden layers and a linear last
layer ``y = h_{L-1} @ W_{L-1} + b_{L-1} + c`` with a constant output offset ``c``
(0.5 in the DWSNets INR datasets, whose images lie in ``[0, 1]``; not a weight).
Coordinates live in ``[-1, 1]^d``.
Because ``w0`` multiplies the bias too, shifting a bias by ``k*pi/w0`` flips the
neuron's sign ``(-1)^k``: the symmetry the SIREN-bias augmentation uses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from dwsjax.weights import MLPSpec, WeightSpace

SIREN_W0 = 30.0


INIT_SCHEMES = ("dwsnets", "sitzmann")


def siren_init(key: jax.Array, spec: MLPSpec, w0: float = SIREN_W0, scheme: str = "dwsnets") -> WeightSpace:
    """Initial SIREN weights.

    ``scheme="dwsnets"``, the init of the INR datasets of DWSNets and of the
    augmentation paper (DWSNets ``nn/inr.py``): every sine layer, the first
    included, draws ``W ~ U(-sqrt(6/d_in)/w0, sqrt(6/d_in)/w0)`` and starts with
    zero biases; the linear last layer is PyTorch's ``nn.Linear`` default,
    ``W, b ~ U(-1/sqrt(d_in), 1/sqrt(d_in))``.

    ``scheme="sitzmann"`` (Sitzmann et al., Sec. 3.2): layer 0
    ``W ~ U(-1/d_in, 1/d_in)``, later layers ``U(-sqrt(6/d_in)/w0, sqrt(6/d_in)/w0)``,
    every bias ``U(-1/sqrt(d_in), 1/sqrt(d_in))`` (``nn.Linear``'s default).

    Args:
        key: PRNG key.
        spec: SIREN architecture ``(d_0, ..., d_L)``.
        w0: Frequency factor of the sine layers.
        scheme: ``"dwsnets"`` or ``"sitzmann"``.

    Returns:
        One unbatched :class:`WeightSpace`: ``W_i`` ``(d_i, d_{i+1})``, ``b_i`` ``(d_{i+1},)``.

    Raises:
        ValueError: If ``scheme`` is unknown.
    """
    if scheme not in INIT_SCHEMES:
        raise ValueError(f"scheme must be one of {INIT_SCHEMES}, got {scheme!r}")
    weights, biases = [], []
    last = spec.num_layers - 1
    for i, (key_i, (d_in, d_out)) in enumerate(zip(jax.random.split(key, spec.num_layers), spec.layer_shapes)):
        key_w, key_b = jax.random.split(key_i)
        sine_bound = (6.0 / d_in) ** 0.5 / w0
        if scheme == "dwsnets":
            w_bound, b_bound = (d_in**-0.5, d_in**-0.5) if i == last else (sine_bound, 0.0)
        else:
            w_bound, b_bound = (1.0 / d_in if i == 0 else sine_bound), d_in**-0.5
        weights.append(jax.random.uniform(key_w, (d_in, d_out), minval=-w_bound, maxval=w_bound))
        biases.append(jax.random.uniform(key_b, (d_out,), minval=-b_bound, maxval=b_bound))
    return WeightSpace(tuple(weights), tuple(biases))


def siren_init_batch(keys: jax.Array, spec: MLPSpec, w0: float = SIREN_W0, scheme: str = "dwsnets") -> WeightSpace:
    """One SIREN per key, :func:`siren_init` vmapped.

    Args:
        keys: Typed PRNG keys ``(*batch,)`` (``jax.random.split(key, n)``) or raw ``uint32`` keys
            ``(*batch, 2)``.
        spec: SIREN architecture.
        w0: Frequency factor of the sine layers.
        scheme: ``"dwsnets"`` or ``"sitzmann"`` (:func:`siren_init`).

    Returns:
        A :class:`WeightSpace` with batch shape ``(*batch,)``.
    """
    typed = jax.dtypes.issubdtype(keys.dtype, jax.dtypes.prng_key)
    batch = keys.shape if typed else keys.shape[:-1]
    flat = keys.reshape((-1,) + keys.shape[len(batch) :])
    return jax.tree.map(
        lambda leaf: leaf.reshape(batch + leaf.shape[1:]),
        jax.vmap(lambda k: siren_init(k, spec, w0, scheme))(flat),
    )


def siren_apply(ws: WeightSpace, coords: jax.Array, w0: float = SIREN_W0, output_offset: float = 0.0) -> jax.Array:
    """Evaluate SIRENs at coordinates: ``f(x) + output_offset``.

    ``h_{i+1} = sin(w0 (h_i @ W_i + b_i))`` for the hidden layers and a linear last
    layer (Sitzmann et al. 2020; see :mod:`dwsjax.siren`).

    Args:
        ws: SIRENs with batch shape ``(*B,)``.
        coords: ``(P, d_0)`` coordinates shared by all SIRENs, or ``(*B, P, d_0)`` one set per SIREN.
        w0: Frequency factor of the sine layers.
        output_offset: Constant added to the output (the fitting recipe's; :attr:`InrStore.output_offset`).

    Returns:
        ``(*B, P, d_L)`` outputs.
    """
    h = coords
    last = len(ws.weights) - 1
    for i, (w, b) in enumerate(zip(ws.weights, ws.biases)):
        z = h @ w + b[..., None, :]
        h = jnp.sin(w0 * z) if i < last else z
    return h + output_offset


def image_coords(height: int, width: int) -> jax.Array:
    """Pixel-centre coordinates of an image.

    Args:
        height: Image height in pixels.
        width: Image width in pixels.

    Returns:
        ``(height * width, 2)`` coordinates in ``[-1, 1]^2``, ``(y, x)`` order, row-major:
        pixel ``(r, c)`` is at ``((r + 0.5) / height * 2 - 1, (c + 0.5) / width * 2 - 1)``.
    """
    ys = (jnp.arange(height) + 0.5) / height * 2 - 1
    xs = (jnp.arange(width) + 0.5) / width * 2 - 1
    grid = jnp.stack(jnp.meshgrid(ys, xs, indexing="ij"), axis=-1)
    return grid.reshape(-1, 2)


def grid_coords(resolution: int, dim: int = 3) -> jax.Array:
    """A regular grid over ``[-1, 1]^dim``, faces included.

    Args:
        resolution: Points per axis.
        dim: Number of dimensions.

    Returns:
        ``(resolution**dim, dim)`` coordinates, the first axis varying slowest.
    """
    axis = jnp.linspace(-1.0, 1.0, resolution)
    grid = jnp.stack(jnp.meshgrid(*([axis] * dim), indexing="ij"), axis=-1)
    return grid.reshape(-1, dim)


def render_image(
    ws: WeightSpace, height: int, width: int, w0: float = SIREN_W0, output_offset: float = 0.0
) -> jax.Array:
    """Render image SIRENs on the pixel grid :func:`image_coords`.

    Args:
        ws: Image SIRENs (``d_0 = 2``) with batch shape ``(*B,)``.
        height: Image height in pixels.
        width: Image width in pixels.
        w0: Frequency factor of the sine layers.
        output_offset: Constant added to the output (the fitting recipe's).

    Returns:
        ``(*B, height, width, channels)`` images, ``channels = d_L``.
    """
    out = siren_apply(ws, image_coords(height, width), w0, output_offset)
    return out.reshape(out.shape[:-2] + (height, width, out.shape[-1]))


def render_sdf(ws: WeightSpace, resolution: int, w0: float = SIREN_W0, output_offset: float = 0.0) -> jax.Array:
    """Evaluate SDF (or UDF) SIRENs on a regular grid, :func:`grid_coords`.

    Args:
        ws: Shape SIRENs (``d_0 = 3``, ``d_L = 1``) with batch shape ``(*B,)``.
        resolution: Points ``r`` per axis of the grid over ``[-1, 1]^3``.
        w0: Frequency factor of the sine layers.
        output_offset: Constant added to the output.

    Returns:
        ``(*B, r, r, r)`` distances.
    """
    out = siren_apply(ws, grid_coords(resolution, 3), w0, output_offset)
    return out.reshape(out.shape[:-2] + (resolution,) * 3)


def psnr(pred: jax.Array, target: jax.Array, data_range: float = 1.0, axes=None) -> jax.Array:
    """Peak signal-to-noise ratio ``10 log10(data_range^2 / MSE)`` in dB.

    Args:
        pred: Predictions.
        target: Targets, broadcastable with ``pred``.
        data_range: Range of the data (1 for images in ``[0, 1]``).
        axes: Axes averaged in the MSE (default: all); the others stay as batch axes.

    Returns:
        The PSNR, of the shape that remains after reducing ``axes`` (a scalar by default).
    """
    mse = jnp.mean((pred - target) ** 2, axis=axes)
    return 10.0 * jnp.log10(data_range**2 / jnp.maximum(mse, 1e-20))
