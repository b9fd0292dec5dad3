"""Procedural datasets that need no files, deterministic given a seed.

Object ``i`` of a split has class ``i % num_classes`` and draws its jitter from
``np.random.default_rng([seed, split_stream, i])`` (``split_stream`` 0 for train,
1 for test), so train and test come from different streams and the first ``n``
objects do not depend on how many are generated.

* ``synthetic2d``: 28x28 grayscale shapes, rendered anti-aliased from 2D signed
  distances ``d`` as ``intensity * clip(0.5 - d / pixel, 0, 1)``; jitter: size,
  rotation within +-15 degrees, centre within +-0.15, intensity in [0.7, 1].
* ``synthetic3d``: 3D primitives with exact signed distance functions, random
  rotation, size (bounding radius 0.55..0.85) and proportions, sampled like real
  shapes (:func:`dwsjax.data.shapes.sample_locations`) around surface points found
  by projecting uniform points onto the surface, ``x <- x - f(x) grad f(x)``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from dwsjax.data.shapes import object_rng, sample_locations

SPLIT_STREAMS = {"train": 0, "test": 1}
IMAGE_SIDE = 28
MAX_TILT = np.pi / 12

Array = np.ndarray


def length(q: Array) -> Array:
    return np.linalg.norm(q, axis=-1)


def box2d(q: Array, half: Array) -> Array:
    """Signed distance to axis-aligned boxes with half-sizes ``half`` (..., 2)."""
    d = np.abs(q) - half
    return length(np.maximum(d, 0)) + np.minimum(d.max(axis=-1), 0)


def disc(q: Array, r: Array) -> Array:
    return length(q) - r


def equilateral_triangle(q: Array, r: Array) -> Array:
    """Signed distance to the triangle with vertices ``(+-r, -r/sqrt3)``, ``(0, 2r/sqrt3)``."""
    k = np.sqrt(3.0)
    x, y = np.abs(q[..., 0]) - r, q[..., 1] + r / k
    fold = x + k * y > 0
    x, y = np.where(fold, (x - k * y) / 2, x), np.where(fold, (-k * x - y) / 2, y)
    x = x - np.clip(x, -2 * r, 0)
    return -np.hypot(x, y) * np.sign(y)


def rotate2d(q: Array, angle: Array) -> Array:
    """Rotate points ``(..., P, 2)`` by ``angle`` (...,) radians."""
    c, s = np.cos(angle)[..., None], np.sin(angle)[..., None]
    return np.stack([c * q[..., 0] - s * q[..., 1], s * q[..., 0] + c * q[..., 1]], axis=-1)


def pair(a: Array, b: Array) -> Array:
    """Stack per-object scalars ``(n, 1)`` into half-sizes ``(n, 1, 2)``."""
    return np.stack(np.broadcast_arrays(a, b), axis=-1)


def two_discs(q: Array, s: Array) -> Array:
    shift = pair(0.45 * s, 0 * s)
    return np.minimum(disc(q - shift, 0.32 * s), disc(q + shift, 0.32 * s))


def ellipse(q: Array, s: Array) -> Array:
    """Approximate signed distance ``(|q / (a, b)| - 1) min(a, b)``, a = 0.8 s, b = 0.45 s."""
    return (length(q / pair(0.8 * s, 0.45 * s)) - 1) * 0.45 * s


SHAPES_2D: dict[str, Callable[[Array, Array], Array]] = {
    "disc": lambda q, s: disc(q, 0.6 * s),
    "square": lambda q, s: box2d(q, pair(0.55 * s, 0.55 * s)),
    "triangle": lambda q, s: equilateral_triangle(q, 0.75 * s),
    "cross": lambda q, s: np.minimum(box2d(q, pair(0.8 * s, 0.22 * s)), box2d(q, pair(0.22 * s, 0.8 * s))),
    "ring": lambda q, s: np.abs(disc(q, 0.6 * s)) - 0.15 * s,
    "horizontal_bar": lambda q, s: box2d(q, pair(0.85 * s, 0.2 * s)),
    "vertical_bar": lambda q, s: box2d(q, pair(0.2 * s, 0.85 * s)),
    "ellipse": ellipse,
    "diamond": lambda q, s: box2d(rotate2d(q, np.full(q.shape[:-2], np.pi / 4)), pair(0.5 * s, 0.5 * s)),
    "two_discs": two_discs,
}
SYNTHETIC2D_CLASS_NAMES = tuple(SHAPES_2D)


def pixel_centres_xy(side: int) -> Array:
    """Pixel centres ``(side*side, 2)`` in ``[-1, 1]^2`` as (x, y), row-major (y = row)."""
    axis = (np.arange(side) + 0.5) / side * 2 - 1
    ys, xs = np.meshgrid(axis, axis, indexing="ij")
    return np.stack([xs.ravel(), ys.ravel()], axis=-1)


def synthetic2d(split: str, n: int, seed: int = 0) -> tuple[Array, Array]:
    """Images float32 ``(n, 28, 28, 1)`` in ``[0, 1]`` and labels int32 ``(n,)``."""
    labels = np.arange(n) % len(SHAPES_2D)
    jitter = np.array([object_rng(seed, SPLIT_STREAMS[split], i).random(6) for i in range(n)]).reshape(n, 6)
    size = 0.55 + 0.3 * jitter[:, 0:1]
    tilt = (2 * jitter[:, 1] - 1) * MAX_TILT
    centre = (2 * jitter[:, 2:4] - 1) * 0.15
    intensity = 0.7 + 0.3 * jitter[:, 4:5]
    local = rotate2d(pixel_centres_xy(IMAGE_SIDE)[None] - centre[:, None], -tilt)
    distance = np.empty((n, IMAGE_SIDE**2))
    for label, shape in enumerate(SHAPES_2D.values()):
        mask = labels == label
        distance[mask] = shape(local[mask], size[mask])
    pixel = 2.0 / IMAGE_SIDE
    images = intensity * np.clip(0.5 - distance / pixel, 0.0, 1.0)
    return images.reshape(n, IMAGE_SIDE, IMAGE_SIDE, 1).astype(np.float32), labels.astype(np.int32)


def sphere(q: Array, dims: Array) -> Array:
    return length(q) - dims[0]


def box3d(q: Array, dims: Array) -> Array:
    d = np.abs(q) - dims
    return length(np.maximum(d, 0)) + np.minimum(d.max(axis=-1), 0)


def torus(q: Array, dims: Array) -> Array:
    """Torus around the z axis: major radius ``dims[0]``, minor radius ``dims[1]``."""
    ring = np.stack([length(q[..., :2]) - dims[0], q[..., 2]], axis=-1)
    return length(ring) - dims[1]


def cylinder(q: Array, dims: Array) -> Array:
    """Capped cylinder along z: radius ``dims[0]``, half-height ``dims[1]``."""
    d = np.stack([length(q[..., :2]) - dims[0], np.abs(q[..., 2]) - dims[1]], axis=-1)
    return length(np.maximum(d, 0)) + np.minimum(d.max(axis=-1), 0)


def capsule(q: Array, dims: Array) -> Array:
    """Capsule along z: radius ``dims[0]``, segment half-length ``dims[1]``."""
    axial = q[..., 2] - np.clip(q[..., 2], -dims[1], dims[1])
    return np.hypot(length(q[..., :2]), axial) - dims[0]


def unit_vector(v: Array) -> Array:
    return v / np.linalg.norm(v)


def sphere_dims(radius: float, u: Array) -> Array:
    return np.array([radius, 0.0, 0.0])


def box_dims(radius: float, u: Array) -> Array:
    """Half-extents with half-diagonal ``radius`` and random proportions."""
    return radius * unit_vector(0.3 + 0.7 * u)


def torus_dims(radius: float, u: Array) -> Array:
    minor = radius * (0.2 + 0.2 * u[0])
    return np.array([radius - minor, minor, 0.0])


def cylinder_dims(radius: float, u: Array) -> Array:
    angle = np.deg2rad(25 + 40 * u[0])
    return np.array([radius * np.cos(angle), radius * np.sin(angle), 0.0])


def capsule_dims(radius: float, u: Array) -> Array:
    thickness = radius * (0.25 + 0.25 * u[0])
    return np.array([thickness, radius - thickness, 0.0])


PRIMITIVES_3D = {
    "sphere": (sphere, sphere_dims),
    "box": (box3d, box_dims),
    "torus": (torus, torus_dims),
    "cylinder": (cylinder, cylinder_dims),
    "capsule": (capsule, capsule_dims),
}
SYNTHETIC3D_CLASS_NAMES = tuple(PRIMITIVES_3D)


def random_rotation(rng: np.random.Generator) -> Array:
    """Uniformly random rotation matrix ``(3, 3)`` (QR of a Gaussian matrix)."""
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else q * np.array([-1.0, 1.0, 1.0])


def posed_sdf(sdf: Callable[[Array, Array], Array], dims: Array, rotation: Array) -> Callable[[Array], Array]:
    """World-space SDF of a primitive rotated by ``rotation``: ``x -> f(R^T x)``."""
    return lambda x: sdf(x @ rotation, dims)


def project_to_surface(f: Callable[[Array], Array], x: Array, steps: int = 3, eps: float = 1e-4) -> Array:
    """Move points onto ``f = 0`` by Newton steps ``x - f(x) g / |g|^2`` (g by central differences)."""
    offsets = eps * np.eye(3)
    for _ in range(steps):
        grad = np.stack([(f(x + o) - f(x - o)) / (2 * eps) for o in offsets], axis=-1)
        x = x - (f(x) / np.maximum((grad**2).sum(-1), 1e-12))[:, None] * grad
    return x


def primitive_samples(label: int, rng: np.random.Generator, n_points: int, near_fraction: float) -> tuple[Array, Array]:
    """Locations ``(P, 3)`` and exact signed distances ``(P,)`` for one random primitive."""
    sdf, draw_dims = PRIMITIVES_3D[SYNTHETIC3D_CLASS_NAMES[label]]
    dims = draw_dims(0.55 + 0.3 * rng.random(), rng.random(3))
    f = posed_sdf(sdf, dims, random_rotation(rng))
    surface = project_to_surface(f, rng.uniform(-1.0, 1.0, (2048, 3)))
    query = sample_locations(surface, rng, n_points, near_fraction)
    return query, f(query.astype(np.float64)).astype(np.float32)


def synthetic3d(
    split: str, n: int, seed: int = 0, n_points: int = 4096, near_fraction: float = 0.5
) -> tuple[Array, Array, Array]:
    """Locations ``(n, P, 3)``, signed distances ``(n, P, 1)`` and labels int32 ``(n,)``."""
    labels = np.arange(n) % len(PRIMITIVES_3D)
    pairs = [
        primitive_samples(label, object_rng(seed, SPLIT_STREAMS[split], i), n_points, near_fraction)
        for i, label in enumerate(labels)
    ]
    coords = np.stack([q for q, _ in pairs]).reshape(n, n_points, 3)
    values = np.stack([d for _, d in pairs]).reshape(n, n_points, 1)
    return coords, values, labels.astype(np.int32)
