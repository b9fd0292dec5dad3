"""On-disk INR datasets: shards of fitted weights plus a JSON manifest.

Layout of a store directory::

    manifest.json          identity (dataset, split, fit config, seed, views, ...),
                           done shards, and per-INR records of each shard
    shard_00000.npz        weights (n, num_params) flattened as in flatten_weights,
                           labels, object_ids, view_ids, mse, psnr, steps, status

    shard_00000.part00.npz the same columns for part of a shard still being fitted

Shard ``k`` holds objects ``[k * shard_objects, (k + 1) * shard_objects)``, each
with all its views (object-major). Every file is written to a temporary name
and renamed, shard first, manifest second, so a killed job leaves either a
complete shard listed in the manifest or nothing that counts; rerunning fits
only the missing shards. A shard is fitted in parts whose files a rerun picks
up, so a kill loses at most one part (see :func:`dwsjax.inr_datasets.build_inr_store`).
The manifest keeps each shard's SHA-256: loading refuses a shard whose file
changed, naming it, and :meth:`InrStore.repair` drops damaged or missing shards
so that the builder refits them. A store refuses to be extended with a
different identity. INRs whose fit produced NaNs or diverged are kept with
their status and left out when loading unless asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dwsjax.files import atomic_write_bytes, atomic_write_text, exclusive_lock
from dwsjax.weights import MLPSpec, WeightSpace, flatten_weights, unflatten_weights

MANIFEST = "manifest.json"
MANIFEST_LOCK = ".manifest.lock"  # held while the manifest is read, changed and written back
FORMAT_VERSION = 1
STATUS_OK, STATUS_NAN, STATUS_DIVERGED = "ok", "nan", "diverged"
SHARD_COLUMNS = ("weights", "labels", "object_ids", "view_ids", "mse", "psnr", "steps", "status")
NPZ_ERRORS = (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile)


class DamagedShardError(ValueError):
    """A shard listed in the manifest whose file is missing, changed since it was written, or unreadable."""

    def __init__(self, path: Path, problem: str):
        self.path, self.problem = path, problem
        super().__init__(
            f"INR shard {path} is damaged: {problem}. Rerun the command that built the store with the same "
            "arguments (python -m experiments.fit_inrs ..., experiments.classify, or "
            "dwsjax.inr_datasets.build_inr_store) to refit it"
        )


def npz_bytes(columns: dict[str, np.ndarray]) -> bytes:
    """The ``.npz`` file holding ``columns``."""
    buffer = io.BytesIO()
    np.savez(buffer, **columns)
    return buffer.getvalue()


def read_npz(raw: bytes) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` file's bytes (CRC-checked by ``zipfile``)."""
    with np.load(io.BytesIO(raw)) as f:
        return {k: f[k] for k in f.files}


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def write_npz(path: Path, columns: dict[str, np.ndarray]) -> str:
    """Write ``columns`` to ``path`` as ``.npz`` atomically; ``-> the file's SHA-256``."""
    raw = npz_bytes(columns)
    atomic_write_bytes(path, lambda f: f.write(raw))
    return sha256(raw)


class InrBatch(NamedTuple):
    """A set of ``n`` INRs: weight spaces with batch shape ``(n,)`` and their per-INR records.

    Attributes:
        weights: The INRs' :class:`WeightSpace`, batch shape ``(n,)``.
        labels: ``(n,)`` integer class labels.
        object_ids: ``(n,)`` index of each INR's object in the official split order.
        view_ids: ``(n,)`` view of each INR (INRs of one object fitted from different inits).
    """

    weights: WeightSpace
    labels: np.ndarray
    object_ids: np.ndarray
    view_ids: np.ndarray


def select(batch: InrBatch, index: np.ndarray) -> InrBatch:
    """The INRs of ``batch`` picked by a boolean mask ``(n,)`` or an integer index array ``(m,)``."""
    index = np.asarray(index)
    if index.dtype == bool and index.shape != batch.labels.shape:
        raise ValueError(f"mask of shape {index.shape} does not match a batch of {len(batch.labels)} INRs")
    return InrBatch(
        jax.tree.map(lambda x: x[index], batch.weights),
        batch.labels[index],
        batch.object_ids[index],
        batch.view_ids[index],
    )


def objects_in_order(batch: InrBatch) -> np.ndarray:
    """The distinct object ids of ``batch`` in the order they were fitted (not sorted).

    Loaders may read a split in a shuffled order (ModelNet) while ids keep the
    official index, so "the first N objects" must follow this order.
    """
    ids, first = np.unique(batch.object_ids, return_index=True)
    return ids[np.argsort(first)]


def fit_status(mse: np.ndarray, target_variance: np.ndarray) -> np.ndarray:
    """``"nan"`` for non-finite results, ``"diverged"`` when an INR is far worse than
    predicting its target's mean (``mse > 4 var(target)``), else ``"ok"``. (A barely
    fitted INR of the DWSNets init, ``f(x) + 0.5`` after a few steps, can be somewhat
    worse than the mean and is still a fit, not a divergence.)"""
    status = np.full(mse.shape, STATUS_OK, dtype="<U8")
    status[mse > 4.0 * np.maximum(target_variance, 1e-12)] = STATUS_DIVERGED
    status[~np.isfinite(mse)] = STATUS_NAN
    return status


class InrStore:
    """A directory of fitted INR shards (layout: see :mod:`dwsjax.store`).

    Open with :meth:`open`, or build (and resume building) with
    :func:`dwsjax.inr_datasets.build_inr_store`; :meth:`load` reads the INRs.
    ``identity`` holds what decides the content (dataset, split, fit settings,
    seed, views), ``spec`` the INRs' architecture and ``output_offset`` the
    constant they add to their output.
    """

    def __init__(self, root: Path, manifest: dict):
        self.root = Path(root)
        self.manifest = manifest

    @classmethod
    def open(cls, root: str | os.PathLike) -> InrStore:
        """Open an existing store.

        Args:
            root: The store's directory.

        Returns:
            The :class:`InrStore`.

        Raises:
            FileNotFoundError: If ``root`` holds no store manifest.
            ValueError: If the manifest is corrupt or of another format version.
        """
        root = Path(root)
        path = root / MANIFEST
        if not path.exists():
            raise FileNotFoundError(
                f"no INR store at {root} (missing {MANIFEST}); create one with "
                f"`python -m experiments.fit_inrs --out {root} ...`"
            )
        try:
            manifest = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"corrupt INR store manifest {path}: {err}; delete the store and refit") from err
        if manifest.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path} has format {manifest.get('format')}, this dwsjax reads {FORMAT_VERSION}")
        return cls(root, manifest)

    @classmethod
    def create_or_resume(cls, root: str | os.PathLike, identity: dict) -> InrStore:
        """Open the store at ``root`` if its identity equals ``identity``; create it if absent.

        Args:
            root: The store's directory.
            identity: JSON-able; must contain ``spec`` (layer widths), ``views`` and ``shard_objects``.

        Returns:
            The :class:`InrStore`, empty if it was created.

        Raises:
            ValueError: If the store at ``root`` has a different identity.
        """
        root = Path(root)
        identity = json.loads(json.dumps(identity))
        if (root / MANIFEST).exists():
            store = cls.open(root)
            stored = store.manifest["identity"]
            if stored != identity:
                diff = sorted(k for k in set(stored) | set(identity) if stored.get(k) != identity.get(k))
                details = "; ".join(f"{k}: stored {stored.get(k)!r}, requested {identity.get(k)!r}" for k in diff)
                raise ValueError(
                    f"the INR store at {root} was fitted with a different configuration ({details}). "
                    f"Use another output directory, or delete {root} to refit."
                )
            return store
        with exclusive_lock(root, None, MANIFEST_LOCK):  # another process may create it meanwhile
            if (root / MANIFEST).exists():
                return cls.create_or_resume(root, identity)
            store = cls(root, {"format": FORMAT_VERSION, "identity": identity, "shards": {}})
            store._write_manifest()
        return store

    @property
    def identity(self) -> dict:
        return self.manifest["identity"]

    @property
    def spec(self) -> MLPSpec:
        return MLPSpec(tuple(self.identity["spec"]))

    @property
    def output_offset(self) -> float:
        """The constant the INRs add to their output (render with ``siren_apply(..., output_offset=)``)."""
        return float(self.identity.get("output_offset", 0.0))

    @property
    def shard_objects(self) -> int:
        return int(self.identity["shard_objects"])

    def done_shards(self) -> list[int]:
        return sorted(int(k) for k in self.manifest["shards"])

    def shard_path(self, index: int) -> Path:
        return self.root / f"shard_{index:05d}.npz"

    def part_path(self, index: int, part: int) -> Path:
        return self.root / f"shard_{index:05d}.part{part:02d}.npz"

    def write_shard(self, index: int, records: dict[str, np.ndarray], weights: WeightSpace) -> None:
        """Store one shard atomically and record it (and its checksum) in the manifest.

        ``records`` holds equal-length arrays ``labels, object_ids, view_ids, mse,
        psnr, steps, status``; ``weights`` has batch shape ``(n,)``.
        """
        flat = np.asarray(flatten_weights(weights), np.float32)
        self._store_shard(index, {"weights": flat, **{k: np.asarray(v) for k, v in records.items()}})

    def write_part(self, index: int, part: int, columns: dict[str, np.ndarray]) -> None:
        """Store part ``part`` of shard ``index`` atomically (not in the manifest): the
        :data:`SHARD_COLUMNS` of some of its INRs, ``weights`` flat ``(n, num_params)``."""
        write_npz(self.part_path(index, part), columns)

    def read_part(self, index: int, part: int) -> dict[str, np.ndarray] | None:
        """The columns of a part file, or ``None`` if it is absent or unreadable (then it is refitted)."""
        path = self.part_path(index, part)
        try:
            columns = read_npz(path.read_bytes())
        except (FileNotFoundError, *NPZ_ERRORS):
            return None
        return columns if all(k in columns for k in SHARD_COLUMNS) else None

    def finish_shard(self, index: int, parts: list[dict[str, np.ndarray]]) -> None:
        """Join the parts of shard ``index`` into the shard file, record it, delete the part files.
        Columns beyond :data:`SHARD_COLUMNS` that every part has (3D quality figures) are kept."""
        columns = [k for k in parts[0] if all(k in p for p in parts)]
        self._store_shard(index, {k: np.concatenate([p[k] for p in parts]) for k in columns})
        self.remove_parts(index)

    def remove_parts(self, index: int) -> None:
        for path in self.root.glob(f"shard_{index:05d}.part*.npz"):
            path.unlink()

    def _store_shard(self, index: int, columns: dict[str, np.ndarray]) -> None:
        checksum = write_npz(self.shard_path(index), columns)
        entry = {
            "file": self.shard_path(index).name,
            "count": int(columns["weights"].shape[0]),
            "sha256": checksum,
            **{k: v.tolist() for k, v in columns.items() if k != "weights"},
        }
        with self._changing_manifest():
            self.manifest["shards"][str(index)] = entry

    @contextlib.contextmanager
    def _changing_manifest(self) -> Iterator[None]:
        """Under the manifest's lock: read it again from disk (:meth:`reload`), let the block change it,
        write it back, so that changes of several processes merge."""
        with exclusive_lock(self.root, None, MANIFEST_LOCK):
            self.reload()
            yield
            self._write_manifest()

    def reload(self) -> None:
        """Read the shards and metadata the manifest on disk holds (other processes may have changed them)."""
        on_disk = json.loads((self.root / MANIFEST).read_text())
        self.manifest.update({k: on_disk[k] for k in ("shards", "metadata") if k in on_disk})

    def repair(self) -> dict[int, str]:
        """Drop every listed shard whose file is missing or damaged (deleting the file) so
        that it is refitted; record the checksum of intact shards written before
        checksums existed. Returns ``{index: problem}`` of the dropped shards."""
        with exclusive_lock(self.root, None, MANIFEST_LOCK):
            self.reload()
            return self._repair()

    def _repair(self) -> dict[int, str]:
        damaged, unchecked = {}, []
        for index in self.done_shards():
            entry = self.manifest["shards"][str(index)]
            try:
                self.read_shard(index, parse="sha256" not in entry)
            except DamagedShardError as err:
                damaged[index] = err.problem
                del self.manifest["shards"][str(index)]
                self.shard_path(index).unlink(missing_ok=True)
                continue
            if "sha256" not in entry:
                entry["sha256"] = sha256(self.shard_path(index).read_bytes())
                unchecked.append(index)
        if damaged or unchecked:
            self._write_manifest()
        return damaged

    def update_metadata(self, **entries) -> None:
        """Record JSON-able facts about the store (class names, object kind, ...)."""
        with self._changing_manifest():
            self.manifest.setdefault("metadata", {}).update(entries)

    @property
    def metadata(self) -> dict:
        return self.manifest.get("metadata", {})

    @property
    def activation(self) -> str:
        """The INRs' activation, ``"sine"`` for every store :mod:`dwsjax.inr_datasets` fits
        (SIRENs; stores written before this was recorded hold SIRENs too)."""
        return self.metadata.get("activation", "sine")

    def _write_manifest(self) -> None:
        atomic_write_text(self.root / MANIFEST, json.dumps(self.manifest, indent=1))

    def summary(self) -> dict:
        """Counts and mean PSNR/MSE over the stored INRs (all statuses)."""
        shards = self.manifest["shards"].values()
        psnr = np.concatenate([s["psnr"] for s in shards]) if shards else np.zeros(0)
        mse = np.concatenate([s["mse"] for s in shards]) if shards else np.zeros(0)
        status = np.concatenate([s["status"] for s in shards]) if shards else np.zeros(0, str)
        ok = status == STATUS_OK
        return {
            "inrs": int(psnr.size),
            "ok": int(ok.sum()),
            "nan": int((status == STATUS_NAN).sum()),
            "diverged": int((status == STATUS_DIVERGED).sum()),
            "mean_psnr": float(psnr[ok].mean()) if ok.any() else float("nan"),
            "mean_mse": float(mse[ok].mean()) if ok.any() else float("nan"),
            **self.quality_summary(ok),
        }

    def quality_summary(self, ok: np.ndarray) -> dict[str, float]:
        """Mean 3D quality figures (:mod:`dwsjax.shape_quality`) over the ok INRs, for stores whose
        every shard has them: ``mean_sign_accuracy`` (SDF), ``mean_near_error``, ``median_chamfer``."""
        shards = list(self.manifest["shards"].values())
        summary = {}
        for key, name, reduce in (
            ("sign_accuracy", "mean_sign_accuracy", np.nanmean),
            ("near_error", "mean_near_error", np.nanmean),
            ("chamfer", "median_chamfer", np.median),
        ):
            if shards and all(key in s for s in shards):
                values = np.concatenate([np.asarray(s[key], float) for s in shards])[ok]
                if np.isfinite(values).any():
                    summary[name] = float(reduce(values))
        return summary

    def load(self, views: int | None = None, include_failed: bool = False) -> InrBatch:
        """All stored INRs as one batch.

        Args:
            views: Keep the first ``views`` views of every object (default: all).
            include_failed: Keep INRs whose fit produced NaNs or diverged (status not ``"ok"``).

        Returns:
            :class:`InrBatch` of the INRs in shard order (object-major), weights as JAX arrays.

        Raises:
            ValueError: If the store has no shards yet or fewer than ``views`` views.
            DamagedShardError: If a shard file is missing, changed or unreadable.
        """
        if not self.manifest["shards"]:
            raise ValueError(f"the INR store at {self.root} has no fitted shards yet")
        parts = [self.shard_columns(i, views, include_failed) for i in self.done_shards()]
        cols = {k: np.concatenate([p[k] for p in parts]) for k in ("weights", "labels", "object_ids", "view_ids")}
        del parts
        weights = unflatten_weights(jnp.asarray(cols.pop("weights")), self.spec)
        return InrBatch(weights, cols["labels"], cols["object_ids"], cols["view_ids"])

    def shard_columns(
        self, index: int, views: int | None = None, include_failed: bool = False
    ) -> dict[str, np.ndarray]:
        """The columns of shard ``index`` (:meth:`read_shard`), only of the INRs :meth:`load` keeps with
        ``views`` and ``include_failed``: reading a store shard by shard holds one shard in memory."""
        if views is not None and views > self.identity["views"]:
            raise ValueError(f"asked for {views} views but the store at {self.root} has {self.identity['views']}")
        cols = self.read_shard(index)
        keep = np.ones(len(cols["labels"]), bool)
        if not include_failed:
            keep &= cols["status"] == STATUS_OK
        if views is not None:
            keep &= cols["view_ids"] < views
        return cols if keep.all() else {k: v[keep] for k, v in cols.items()}

    def shard_batches(self, views: int | None = None, include_failed: bool = False) -> Iterator[InrBatch]:
        """The INRs :meth:`load` gives, one :class:`InrBatch` per shard (weights as NumPy arrays), so
        that a store larger than memory can be read through."""
        for index in self.done_shards():
            cols = self.shard_columns(index, views, include_failed)
            weights = unflatten_weights(cols["weights"], self.spec)
            yield InrBatch(weights, cols["labels"], cols["object_ids"], cols["view_ids"])

    def read_shard(self, index: int, parse: bool = True) -> dict[str, np.ndarray]:
        """The columns of listed shard ``index`` (``{}`` without ``parse``: checksum only), or
        :class:`DamagedShardError` if its file is missing, changed or unreadable."""
        path = self.shard_path(index)
        entry = self.manifest["shards"][str(index)]
        if not path.exists():
            raise DamagedShardError(path, "its file is missing")
        raw = path.read_bytes()
        if "sha256" in entry and sha256(raw) != entry["sha256"]:
            raise DamagedShardError(
                path,
                f"its SHA-256 does not match the manifest, the file changed after it was written "
                f"(it now has {len(raw)} bytes)",
            )
        if not parse:
            return {}
        try:
            cols = read_npz(raw)
        except NPZ_ERRORS as err:
            raise DamagedShardError(path, f"cannot read it ({type(err).__name__}: {err})") from err
        missing = [k for k in SHARD_COLUMNS if k not in cols]
        if missing:
            raise DamagedShardError(path, f"it lacks the columns {missing}")
        expected = (entry["count"], self.spec.num_params)
        if cols["weights"].shape != expected:
            raise DamagedShardError(path, f"it holds weights {cols['weights'].shape}, the manifest expects {expected}")
        return cols


def iterate_batches(
    data: InrBatch, batch_size: int, key: jax.Array | None = None, drop_last: bool = False
) -> Iterator[InrBatch]:
    """Mini-batches of an :class:`InrBatch`, shuffled when ``key`` is given."""
    n = len(data.labels)
    order = np.asarray(jax.random.permutation(key, n)) if key is not None else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for start in range(0, stop, batch_size):
        yield select(data, order[start : start + batch_size])
