"""3D shapes: ModelNet loaders and distance-field training samples.

Loaders return point clouds in their file units; :func:`normalise_shapes` maps a
shape into ``[-1, 1]^3`` (bounding-box centre to the origin, largest half-extent
to 0.9). :func:`distance_samples` draws query locations and their distance to
the surface:

* **locations**: ``near_fraction`` of them are surface points plus Gaussian noise,
  half with sigma ``sigmas[0]`` and half with ``sigmas[1]`` (default 0.01 and 0.05),
  clipped to the cube; the rest are uniform in ``[-1, 1]^3``. Default ``P = 4096``,
  half near, half uniform.
* **signed distance** (oriented points): magnitude = distance to the nearest
  surface point (an over-estimate by up to about the point spacing);
  sign = vote of the ``k`` nearest points, ``sign(sum_j w_j sign((x - p_j) . n_j))``
  with ``w_j = 1 / |x - p_j|``, so inside is negative, outside positive, and one
  flipped normal does not flip the sign; locations farther than 0.05 that are
  in front of all surface points along one of 26 view directions are outside.
* **unsigned distance** (points without normals): the nearest-point distance.

ModelNet's split lists are grouped by class, so both loaders take objects in
:func:`object_order` (a fixed shuffle) and any ``limit`` is a class-mixed
sample; ``object_ids`` still index the official list.

Each object's randomness comes from ``np.random.default_rng([seed, object_id])``,
so samples are reproducible and independent of which other objects are loaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
from scipy.ndimage import maximum_filter
from scipy.spatial import cKDTree

from dwsjax.data.sources import read_bytes

SHAPE_HALF_EXTENT = 0.9
NEAR_SIGMAS = (0.01, 0.05)


class PointClouds(NamedTuple):
    """A batch of point clouds with labels."""

    points: np.ndarray  # (N, M, 3) float32
    normals: np.ndarray | None  # (N, M, 3) float32 unit outward normals, or None
    labels: np.ndarray  # (N,) int32
    object_ids: np.ndarray  # (N,) int64, index in the official split list
    class_names: tuple[str, ...]


def read_text(path: str | Path) -> str:
    """Text contents of a file, gunzipped when the name ends in ``.gz``."""
    try:
        return read_bytes(path).decode()
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a text file ({err})") from None


def read_name_list(path: str | Path) -> list[str]:
    """Non-empty stripped lines of a list file (split lists, shape names)."""
    return [line.strip() for line in read_text(path).splitlines() if line.strip()]


def parse_point_normals(text: str, source: str) -> np.ndarray:
    """``x,y,z,nx,ny,nz`` lines to float32 ``(M, 6)``."""
    try:
        values = np.array(text.replace(",", " ").split(), dtype=np.float32)
    except ValueError as err:
        raise ValueError(f"{source}: non-numeric value ({err})") from None
    if values.size == 0 or values.size % 6:
        raise ValueError(f"{source}: expected lines of 6 numbers x,y,z,nx,ny,nz, got {values.size} numbers")
    return values.reshape(-1, 6)


def load_point_normals(path: str | Path) -> np.ndarray:
    """One ``modelnet40_normal_resampled`` file (``.txt`` or ``.txt.gz``): float32 ``(M, 6)``."""
    return parse_point_normals(read_text(path), str(path))


def shape_class(shape_id: str) -> str:
    """Class of a ModelNet shape id: ``"night_stand_0012" -> "night_stand"``."""
    return shape_id.rsplit("_", 1)[0]


def modelnet40_file(directory: Path, shape_id: str) -> Path | None:
    """Path of a shape's points (gzipped or plain) or None when absent."""
    for suffix in (".txt.gz", ".txt"):
        path = directory / shape_class(shape_id) / f"{shape_id}{suffix}"
        if path.exists():
            return path
    return None


def object_order(n: int) -> np.ndarray:
    """The fixed order ``(n,)`` in which a class-grouped split is read: a permutation seeded by 0."""
    return np.random.default_rng(0).permutation(n)


def modelnet40_coverage(directory: str | Path, split: str) -> tuple[int, int]:
    """``(present, listed)``: how many shapes of ``modelnet40_<split>.txt`` have a file under ``directory``."""
    directory = Path(directory)
    shape_ids = read_name_list(directory / f"modelnet40_{split}.txt")
    return sum(modelnet40_file(directory, s) is not None for s in shape_ids), len(shape_ids)


def load_modelnet40_points(directory: str | Path, split: str, limit: int | None = None) -> PointClouds:
    """ModelNet40 points with normals in the ``modelnet40_normal_resampled`` layout.

    Objects follow ``modelnet40_<split>.txt``; listed shapes whose file is absent
    are skipped (the offline subset holds 156 of 12,311), and ``object_ids`` keep
    the index in the full official list. ``limit`` keeps the first present shapes
    in :func:`object_order`.
    Labels index ``modelnet40_shape_names.txt``.
    """
    directory = Path(directory)
    class_names = tuple(read_name_list(directory / "modelnet40_shape_names.txt"))
    shape_ids = read_name_list(directory / f"modelnet40_{split}.txt")
    present = [(i, f) for i, s in enumerate(shape_ids) if (f := modelnet40_file(directory, s))]
    if not present:
        raise FileNotFoundError(f"no ModelNet40 {split} shape files under {directory}")
    present = [present[i] for i in object_order(len(present))[:limit]]
    arrays = [load_point_normals(f) for _, f in present]
    sizes = {len(a) for a in arrays}
    if len(sizes) > 1:
        raise ValueError(f"ModelNet40 files under {directory} have different point counts {sorted(sizes)}")
    stacked = np.stack(arrays)
    labels = [class_names.index(shape_class(shape_ids[i])) for i, _ in present]
    return PointClouds(
        points=stacked[..., :3],
        normals=stacked[..., 3:],
        labels=np.asarray(labels, np.int32),
        object_ids=np.asarray([i for i, _ in present], np.int64),
        class_names=class_names,
    )


def load_modelnet10_points(path: str | Path, split: str, limit: int | None = None) -> PointClouds:
    """ModelNet10 from ``modelnet10_pcd1024.npz``: points ``(N, 1024, 3)`` in mesh units, no normals.

    Objects come in :func:`object_order`; ``object_ids`` index the official split order.
    """
    with np.load(path, allow_pickle=False) as archive:
        in_split = np.flatnonzero(archive["split"] == split)
        object_ids = object_order(len(in_split))[:limit]
        rows = in_split[object_ids]
        points = archive["points"][rows].astype(np.float32)
        labels = archive["labels"][rows].astype(np.int32)
        class_names = tuple(str(c) for c in archive["class_names"])
    return PointClouds(points, None, labels, object_ids.astype(np.int64), class_names)


def off_header(lines: list[str], source: str) -> tuple[int, int, list[str]]:
    """Vertex count, face count and body lines; handles ``OFF<nv> <nf> <ne>`` on one line."""
    if not lines or not lines[0].startswith("OFF"):
        raise ValueError(f"{source}: not an OFF file (first line {lines[0][:20] if lines else ''!r})")
    glued = lines[0][3:].strip()
    counts, body = (glued, lines[1:]) if glued else (lines[1] if len(lines) > 1 else "", lines[2:])
    fields = counts.split()
    if len(fields) < 2 or not all(f.isdigit() for f in fields[:2]):
        raise ValueError(f"{source}: bad OFF counts line {counts!r}")
    return int(fields[0]), int(fields[1]), body


def fan_triangles(face_lines: list[str]) -> np.ndarray:
    """Polygons ``n i_1 .. i_n`` to triangles ``(i_1, i_k, i_{k+1})``: int64 ``(T, 3)``."""
    triangles = []
    for line in face_lines:
        fields = line.split()
        polygon = fields[1 : 1 + int(fields[0])]
        triangles.extend((polygon[0], a, b) for a, b in zip(polygon[1:-1], polygon[2:]))
    return np.asarray(triangles, dtype=np.int64).reshape(-1, 3)


def parse_off(text: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """OFF text to vertices float32 ``(V, 3)`` and triangles int64 ``(T, 3)``."""
    lines = [s for s in (line.split("#")[0].strip() for line in text.splitlines()) if s]
    n_vertices, n_faces, body = off_header(lines, source)
    if len(body) < n_vertices + n_faces:
        raise ValueError(
            f"{source}: header announces {n_vertices} vertices and {n_faces} faces "
            f"but only {len(body)} lines follow (truncated)"
        )
    vertices = np.asarray([line.split()[:3] for line in body[:n_vertices]], dtype=np.float32)
    triangles = fan_triangles(body[n_vertices : n_vertices + n_faces])
    if vertices.shape != (n_vertices, 3) or triangles.size == 0:
        raise ValueError(f"{source}: malformed vertex or face lines")
    if triangles.min() < 0 or triangles.max() >= n_vertices:
        raise ValueError(f"{source}: face index out of range 0..{n_vertices - 1}")
    return vertices, triangles


def load_off_mesh(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Mesh from an ``.off`` file (optionally gzipped): vertices ``(V, 3)``, triangles ``(T, 3)``."""
    return parse_off(read_text(path), str(path))


def sample_mesh_surface(
    vertices: np.ndarray, triangles: np.ndarray, n: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``n`` area-weighted uniform surface points and their face normals, each ``(n, 3)``.

    Point ``a + u (b - a) + v (c - a)`` with ``(u, v)`` uniform on the unit triangle;
    normal ``(b - a) x (c - a)`` normalised (orientation follows the face winding).
    """
    a, b, c = (vertices[triangles[:, i]].astype(np.float64) for i in range(3))
    cross = np.cross(b - a, c - a)
    area = np.linalg.norm(cross, axis=-1)
    if area.sum() <= 0:
        raise ValueError("mesh has zero surface area")
    face = rng.choice(len(triangles), size=n, p=area / area.sum())
    u, v = rng.random((2, n, 1))
    outside = u + v > 1
    u, v = np.where(outside, 1 - u, u), np.where(outside, 1 - v, v)
    points = a[face] + u * (b - a)[face] + v * (c - a)[face]
    normals = cross[face] / area[face, None]
    return points.astype(np.float32), normals.astype(np.float32)


def view_directions(n: int) -> np.ndarray:
    """``n`` unit vectors ``(n, 3)`` spread evenly over the sphere (Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    z = 1 - 2 * i / n
    azimuth = np.pi * (1 + 5**0.5) * i
    ring = np.sqrt(1 - z**2)
    return np.stack([ring * np.cos(azimuth), ring * np.sin(azimuth), z], axis=-1)


def image_plane(view: np.ndarray) -> np.ndarray:
    """Orthonormal basis ``(3, 2)`` of the plane perpendicular to ``view``."""
    helper = np.array([1.0, 0.0, 0.0]) if abs(view[0]) < 0.9 else np.array([0.0, 1.0, 0.0])
    u = np.cross(view, helper)
    u /= np.linalg.norm(u)
    return np.stack([u, np.cross(view, u)], axis=-1)


def view_cells(x: np.ndarray, view: np.ndarray, resolution: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell index ``(Q,)`` in an orthographic ``resolution^2`` map over the cube's shadow, and depth ``x . view``."""
    extent = np.sqrt(3.0)
    pixel = ((x @ image_plane(view) + extent) / (2 * extent) * resolution).astype(int)
    pixel = np.clip(pixel, 0, resolution - 1)
    return pixel[:, 0] * resolution + pixel[:, 1], x @ view


def front_depths(cell: np.ndarray, depth: np.ndarray, resolution: int) -> np.ndarray:
    """Depth of the frontmost point per cell, ``-inf`` for empty cells: ``(resolution^2,)``."""
    front = np.full(resolution**2, -np.inf)
    np.maximum.at(front, cell, depth)
    return front


def orient_by_visibility(
    points: np.ndarray, normals: np.ndarray, n_views: int = 26, resolution: int = 96, tolerance: float = 0.02
) -> tuple[np.ndarray, np.ndarray]:
    """Make normals of a normalised shape point outward; drop points no view sees.

    Raw ModelNet meshes have inconsistently wound faces, so face normals carry no
    reliable side. Point ``p`` is seen from direction ``v`` when it lies within
    ``tolerance`` of the frontmost point of its cell in an orthographic depth map
    looking along ``-v``; its normal is flipped to ``sign(sum over seen views of
    n . v)``. Unseen (interior) points are dropped.
    """
    vote = np.zeros(len(points))
    for view in view_directions(n_views):
        cell, depth = view_cells(points, view, resolution)
        seen = depth >= front_depths(cell, depth, resolution)[cell] - tolerance
        vote += np.where(seen, normals @ view, 0.0)
    kept = vote != 0
    return points[kept], (normals[kept] * np.sign(vote[kept])[:, None]).astype(np.float32)


def in_front_of_surface(query: np.ndarray, points: np.ndarray, n_views: int = 26, resolution: int = 64) -> np.ndarray:
    """Whether each query location ``(Q,)`` lies in front of all surface points along some view.

    Such a location is outside the shape. Each depth map is max-filtered over 3x3
    cells so that cells left empty by sparse sampling do not count as holes.
    """
    outside = np.zeros(len(query), bool)
    for view in view_directions(n_views):
        cell, depth = view_cells(points, view, resolution)
        front = maximum_filter(front_depths(cell, depth, resolution).reshape(resolution, resolution), size=3)
        query_cell, query_depth = view_cells(query, view, resolution)
        outside |= query_depth > front.ravel()[query_cell]
    return outside


def normalise_shapes(points: np.ndarray) -> np.ndarray:
    """Centre ``(..., M, 3)`` shapes at their bounding-box centre, largest half-extent 0.9."""
    low, high = points.min(axis=-2, keepdims=True), points.max(axis=-2, keepdims=True)
    half_extent = (high - low).max(axis=-1, keepdims=True) / 2
    if np.any(half_extent <= 0):
        raise ValueError("cannot normalise a shape whose points all coincide")
    return ((points - (low + high) / 2) * (SHAPE_HALF_EXTENT / half_extent)).astype(np.float32)


def object_rng(*entropy: int) -> np.random.Generator:
    """Generator for one object, derived from integers such as ``(seed, object_id)``."""
    return np.random.default_rng([int(e) for e in entropy])


def sample_locations(
    surface: np.ndarray,
    rng: np.random.Generator,
    n_points: int = 4096,
    near_fraction: float = 0.5,
    sigmas: tuple[float, ...] = NEAR_SIGMAS,
) -> np.ndarray:
    """Query locations ``(n_points, 3)``: noisy surface points, then uniform ones in ``[-1, 1]^3``."""
    n_near = int(round(n_points * near_fraction))
    sigma = np.asarray(sigmas, np.float32)[np.arange(n_near) % len(sigmas), None]
    anchors = surface[rng.integers(len(surface), size=n_near)]
    near = np.clip(anchors + sigma * rng.standard_normal((n_near, 3)), -1.0, 1.0)
    uniform = rng.uniform(-1.0, 1.0, (n_points - n_near, 3))
    return np.concatenate([near, uniform]).astype(np.float32)


def signed_distance(
    query: np.ndarray, points: np.ndarray, normals: np.ndarray, k: int = 8, far: float = 0.05
) -> np.ndarray:
    """Signed distance ``(Q,)`` of ``query`` to an oriented point cloud (negative inside).

    Locations farther than ``far`` from the surface that lie in front of it along
    some view (:func:`in_front_of_surface`) are outside whatever the normals say:
    beyond thin parts (wing tips, table edges) the nearest normals are tangential
    to the offset and their vote is noise.
    """
    dist, idx = cKDTree(points).query(query, k=k)
    offsets = query[:, None, :] - points[idx]
    side = np.sign(np.einsum("qkd,qkd->qk", offsets, normals[idx]))
    inside = np.sum(side / np.maximum(dist, 1e-9), axis=1) < 0
    far_away = dist[:, 0] > far
    inside[far_away] &= ~in_front_of_surface(query[far_away], points)
    return np.where(inside, -dist[:, 0], dist[:, 0]).astype(np.float32)


def unsigned_distance(query: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance ``(Q,)`` from each query location to the nearest point."""
    return cKDTree(points).query(query, k=1)[0].astype(np.float32)


def distance_samples(
    points: np.ndarray,
    normals: np.ndarray | None,
    rng: np.random.Generator,
    n_points: int = 4096,
    near_fraction: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Locations ``(P, 3)`` and distances ``(P,)`` for one normalised shape.

    Signed when ``normals`` are given, unsigned otherwise.
    """
    query = sample_locations(points, rng, n_points, near_fraction)
    if normals is None:
        return query, unsigned_distance(query, points)
    return query, signed_distance(query, points, normals)


def mesh_distance_samples(
    vertices: np.ndarray,
    triangles: np.ndarray,
    rng: np.random.Generator,
    n_points: int = 4096,
    near_fraction: float = 0.5,
    surface_points: int = 10000,
) -> tuple[np.ndarray, np.ndarray]:
    """Signed distance samples ``(P, 3)``, ``(P,)`` of a mesh normalised by its vertices' box.

    Surface points are oriented by :func:`orient_by_visibility`, so the SDF is that
    of the outer, visible surface.
    """
    points, normals = sample_mesh_surface(normalise_shapes(vertices), triangles, surface_points, rng)
    return distance_samples(*orient_by_visibility(points, normals), rng, n_points, near_fraction)


HOLDOUT_STREAM = 1


def point_cloud_samples(
    clouds: PointClouds,
    seed: int = 0,
    n_points: int = 4096,
    near_fraction: float = 0.5,
    signed: bool = True,
    stream: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Distance samples for every cloud: locations ``(N, P, 3)``, distances ``(N, P, 1)``.

    Shapes are normalised first; ``signed`` needs normals. ``stream`` 0 draws the
    fitting samples from ``object_rng(seed, object_id)``; any other stream draws
    independent ones from ``object_rng(seed, object_id, stream)`` (held-out
    queries use :data:`HOLDOUT_STREAM`).
    """
    if signed and clouds.normals is None:
        raise ValueError("signed distances need normals; these point clouds have none")
    points = normalise_shapes(clouds.points)
    normals = clouds.normals if signed else [None] * len(points)
    entropy = () if stream == 0 else (stream,)
    pairs = [
        distance_samples(p, n, object_rng(seed, i, *entropy), n_points, near_fraction)
        for p, n, i in zip(points, normals, clouds.object_ids)
    ]
    return np.stack([q for q, _ in pairs]), np.stack([d for _, d in pairs])[..., None]
