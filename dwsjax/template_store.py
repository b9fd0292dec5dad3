"""Template alignments kept with their INR store: the template and every INR's permutation.

Layout, inside the INR store's directory::

    templates/<digest>/manifest.json    identity: the INR store's identity and shard checksums
                                        and the TemplateConfig; barycentre rounds done, template
                                        and aligned shards with their SHA-256
    templates/<digest>/template.npz     the template after the last finished round (flat weights)
    templates/<digest>/align_00000.npz  for every INR of INR shard 0: object_ids, view_ids,
                                        perm_k, sign_k (per hidden layer k), objective

``<digest>`` hashes the identity, so a changed INR store (a shard added or
refitted to other bytes) or other template settings use another directory;
directories made for an earlier state of the INR store are deleted. Files are
written atomically, manifest last, one per barycentre round and per shard, so
a killed alignment keeps its finished rounds and shards and a rerun continues;
a second process aligning the same store waits for the first
(:func:`dwsjax.files.exclusive_lock`) and then reads its result, and the
processes of a ``jax.distributed`` job split the shards between them (the
manifest merged under its lock).
Permutations rather than aligned weights are kept: the INR store stays the one
copy of the weights, and applying a permutation is cheap.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dwsjax.devices import process_worker
from dwsjax.files import atomic_write_text, exclusive_lock
from dwsjax.matching import mlp_permutation_spec, permute_neurons
from dwsjax.store import MANIFEST_LOCK, NPZ_ERRORS, InrBatch, InrStore, read_npz, sha256, write_npz
from dwsjax.templates import TemplateConfig, align_to, barycentre_round
from dwsjax.weights import WeightSpace, flatten_weights, unflatten_weights

TEMPLATES = "templates"
MANIFEST = "manifest.json"


class StoreAlignment(NamedTuple):
    """Every INR of a store aligned to ``template``: row ``i`` is INR ``(object_ids[i], view_ids[i])``,
    ``perms[k]`` / ``signs[k]`` ``(n, width_k)`` its signed permutation of hidden layer ``k``."""

    template: WeightSpace
    object_ids: np.ndarray
    view_ids: np.ndarray
    perms: tuple[np.ndarray, ...]
    signs: tuple[np.ndarray, ...]
    objective: np.ndarray  # (n,) <template, aligned INR>


def store_fingerprint(store: InrStore) -> dict:
    """The INR store's identity and the checksum of each of its shards: changes when any INR does."""
    shards = {str(i): store.manifest["shards"][str(i)].get("sha256") for i in store.done_shards()}
    return {"inr_store": store.identity, "inr_shards": shards}


def template_identity(store: InrStore, config: TemplateConfig) -> dict:
    return {**store_fingerprint(store), "template": config.check()._asdict()}


def template_dir(store: InrStore, config: TemplateConfig) -> Path:
    digest = hashlib.sha1(json.dumps(template_identity(store, config), sort_keys=True).encode()).hexdigest()
    return store.root / TEMPLATES / digest[:12]


def _read_npz(path: Path, checksum: str | None) -> dict[str, np.ndarray] | None:
    """The arrays of ``path`` if it exists and has SHA-256 ``checksum``, else ``None`` (recompute it)."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    if checksum is None or sha256(raw) != checksum:
        return None
    try:
        return read_npz(raw)
    except NPZ_ERRORS:
        return None


class _Progress:
    """The manifest of one template directory; written atomically after every finished unit."""

    def __init__(self, root: Path, identity: dict):
        self.root = root
        self.identity = identity
        self.manifest = self._on_disk()

    def _on_disk(self) -> dict:
        """The manifest on disk, or a fresh one if it is absent, damaged or of another identity."""
        try:
            manifest = json.loads((self.root / MANIFEST).read_text())
        except (FileNotFoundError, ValueError):  # absent or damaged: start again
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("identity") != self.identity:
            manifest = {"identity": self.identity, "rounds_done": -1, "template_sha256": None, "shards": {}}
        return manifest

    def reload(self) -> None:
        """Read the manifest again (other processes record their shards in it)."""
        self.manifest = self._on_disk()

    def save(self) -> None:
        atomic_write_text(self.root / MANIFEST, json.dumps(self.manifest, indent=1))

    def record_shard(self, index: int, checksum: str) -> None:
        """Record aligned shard ``index`` under the manifest's lock, merged with what other processes
        recorded meanwhile."""
        with exclusive_lock(self.root, None, MANIFEST_LOCK):
            self.reload()
            self.manifest["shards"][str(index)] = checksum
            self.save()


def _remove_stale(store: InrStore, keep: Path) -> None:
    """Delete template directories made for another state (identity or shards) of this INR store."""
    current = store_fingerprint(store)
    for path in (store.root / TEMPLATES).glob(f"*/{MANIFEST}"):
        try:
            identity = json.loads(path.read_text())["identity"]
        except (ValueError, KeyError):
            identity = {}
        if path.parent != keep and {k: identity.get(k) for k in current} != current:
            shutil.rmtree(path.parent)


class _Budget:
    """How many more units of work (barycentre rounds, shards) this call may do (``None``: all)."""

    def __init__(self, units: int | None):
        self.units = units

    def take(self) -> bool:
        if self.units is None:
            return True
        self.units -= 1
        return self.units >= 0


def _template(progress: _Progress, store: InrStore, config: TemplateConfig, solver: str, budget: _Budget):
    """The template after ``config.rounds`` barycentre rounds, continuing from the last saved
    round; ``None`` if ``budget`` ran out first. A new template forgets the aligned shards."""
    saved = _read_npz(progress.root / "template.npz", progress.manifest["template_sha256"])
    done = progress.manifest["rounds_done"] if saved is not None else -1
    if done == config.rounds:
        return unflatten_weights(saved["weights"], store.spec)
    ws = first_inrs(store, config.template_inrs)
    template = jax.tree.map(lambda x: x[0], ws) if done < 0 else unflatten_weights(saved["weights"], store.spec)
    while done < config.rounds:
        if done >= 0:
            if not budget.take():
                return None
            template = barycentre_round(template, ws, config, solver)
        done += 1
        flat = np.asarray(flatten_weights(template), np.float32)
        checksum = write_npz(progress.root / "template.npz", {"weights": flat})
        progress.manifest.update(rounds_done=done, template_sha256=checksum, shards={})
        progress.save()
    return template


def first_inrs(store: InrStore, n: int) -> WeightSpace:
    """The weights of the first ``n`` INRs of ``store`` (fewer if it holds fewer), read shard by shard
    until there are enough, so that memory stays bounded by ``n`` INRs and one shard."""
    flat, count = [], 0
    for index in store.done_shards():
        if count >= n:
            break
        flat.append(store.shard_columns(index)["weights"][: n - count])
        count += len(flat[-1])
    return unflatten_weights(np.concatenate(flat), store.spec)


def _wait_for_template(progress: _Progress, store: InrStore, config: TemplateConfig, poll_seconds: float = 1.0):
    """The template once the process computing it (worker 0) has saved its last round."""
    while True:
        progress.reload()
        if progress.manifest["rounds_done"] == config.rounds:
            saved = _read_npz(progress.root / "template.npz", progress.manifest["template_sha256"])
            if saved is not None:
                return unflatten_weights(saved["weights"], store.spec)
        time.sleep(poll_seconds)


def _shard_path(root: Path, index: int) -> Path:
    return root / f"align_{index:05d}.npz"


def _align_shard(store: InrStore, index: int, template: WeightSpace, config: TemplateConfig, solver: str):
    columns = store.read_shard(index)
    result, _ = align_to(template, unflatten_weights(columns["weights"], store.spec), config, solver)
    hidden = range(len(result.perms))
    return {
        "object_ids": columns["object_ids"],
        "view_ids": columns["view_ids"],
        **{f"perm_{k}": np.asarray(result.perms[k], np.int32) for k in hidden},
        **{f"sign_{k}": np.asarray(result.signs[k], np.int8) for k in hidden},
        "objective": np.asarray(result.objective, np.float32),
    }


def align_store(
    store: InrStore,
    config: TemplateConfig = TemplateConfig(),
    solver: str = "auto",
    progress: bool = True,
    stop_after: int | None = None,
    worker: tuple[int, int] | None = None,
) -> StoreAlignment | None:
    """Align every INR of ``store`` to its template (:mod:`dwsjax.templates`), or load the cached result.

    Resumes a killed run from its last finished barycentre round or shard.
    ``stop_after`` ends this call after that many rounds and shards and returns
    ``None`` (to simulate a killed job in tests). ``solver`` (see
    :func:`dwsjax.matching.resolve_solver`) is not part of the identity: solvers
    agree up to ties. The result is cached in the store's ``templates/`` directory.
    Memory holds the template's INRs and one shard at a time, not the store.

    Several processes share the work as in :func:`dwsjax.inr_datasets.build_inr_store`:
    with ``worker = (i, n)`` worker 0 computes the template, the others wait for it,
    then each aligns the shards whose index is ``i`` modulo ``n`` and waits until
    the others have recorded theirs. By default every process of a
    ``jax.distributed`` job is a worker. A single process holds the lock of the
    store's template directories: a second one started meanwhile waits, then reads
    the result.

    Args:
        store: The INR store whose INRs to align.
        config: Barycentre rounds, template INRs, sign-awareness, sweeps.
        solver: Assignment solver, ``"auto"``, ``"jax"`` or ``"scipy"``.
        progress: Show a progress bar.
        stop_after: End after this many rounds and shards (tests).
        worker: ``(index, count)`` of this process among those aligning the store together.

    Returns:
        :class:`StoreAlignment`: the template and every INR's signed permutations, by
        ``(object id, view id)``; or ``None`` if ``stop_after`` ended the call first.

    Raises:
        ValueError: If ``config`` is out of range, the worker index is not below the count, or no INR
            has finite weights.
    """
    worker = process_worker(worker)
    alone = exclusive_lock(store.root / TEMPLATES, "aligning this INR store") if worker[1] == 1 else nullcontext()
    with alone:
        return _align_store(store, config, solver, progress, stop_after, worker)


def _align_store(store: InrStore, config: TemplateConfig, solver: str, progress: bool, stop_after: int | None, worker):
    """:func:`align_store` as worker ``(index, count)`` (alone: holding the template directories' lock)."""
    identity = template_identity(store, config)
    root = template_dir(store, config)
    root.mkdir(parents=True, exist_ok=True)
    index, count = worker
    state = _Progress(root, identity)
    budget = _Budget(stop_after)
    if index == 0:
        _remove_stale(store, keep=root)
        template = _template(state, store, config, solver, budget)
        if template is None:
            return None
    else:
        template = _wait_for_template(state, store, config)
    shards = store.done_shards()
    todo = [i for i in shards if i % count == index and _aligned_shard(state, i) is None]
    bar = tqdm(total=len(todo), unit="shard", desc="template alignment", disable=not progress or not todo)
    for shard in todo:
        if not budget.take():
            return None
        state.record_shard(
            shard, write_npz(_shard_path(root, shard), _align_shard(store, shard, template, config, solver))
        )
        bar.update()
    bar.close()
    parts = _wait_for_shards(state, shards)
    hidden = len(store.spec.hidden_widths)
    joined = {k: np.concatenate([columns[k] for columns in parts]) for k in parts[0]}
    return StoreAlignment(
        template,
        joined["object_ids"],
        joined["view_ids"],
        tuple(joined[f"perm_{k}"] for k in range(hidden)),
        tuple(joined[f"sign_{k}"].astype(np.float32) for k in range(hidden)),
        joined["objective"],
    )


def _aligned_shard(progress: _Progress, index: int) -> dict[str, np.ndarray] | None:
    """The recorded alignment of INR shard ``index``, or ``None`` if it is not (intact) on disk."""
    return _read_npz(_shard_path(progress.root, index), progress.manifest["shards"].get(str(index)))


def _wait_for_shards(progress: _Progress, shards: list[int], poll_seconds: float = 1.0) -> list[dict[str, np.ndarray]]:
    """The alignments of ``shards``, once every one is recorded (those other workers align)."""
    while True:
        parts = [_aligned_shard(progress, i) for i in shards]
        if all(part is not None for part in parts):
            return parts
        time.sleep(poll_seconds)
        progress.reload()


def apply_alignment(batch: InrBatch, alignment: StoreAlignment) -> InrBatch:
    """``batch`` with every INR replaced by its template-aligned copy (the same function),
    found by ``(object id, view id)``; refuses INRs the alignment does not hold."""
    row_of = {(o, v): i for i, (o, v) in enumerate(zip(alignment.object_ids.tolist(), alignment.view_ids.tolist()))}
    rows = np.array([row_of.get(key, -1) for key in zip(batch.object_ids.tolist(), batch.view_ids.tolist())])
    missing = np.flatnonzero(rows < 0)
    if missing.size:
        raise ValueError(
            f"{missing.size} INRs (e.g. object {batch.object_ids[missing[0]]}, view {batch.view_ids[missing[0]]}) "
            "are not in the template alignment: align the store that holds them (dwsjax.template_store.align_store)"
        )
    pspec = mlp_permutation_spec(batch.weights.spec)
    perms = tuple(jnp.asarray(p[rows]) for p in alignment.perms)
    signs = tuple(jnp.asarray(s[rows]) for s in alignment.signs)
    permute = jax.jit(jax.vmap(lambda ws, p, s: permute_neurons(ws, pspec, p, s)))
    aligned = permute(jax.tree.map(jnp.asarray, batch.weights), perms, signs)
    return batch._replace(weights=jax.tree.map(np.asarray, aligned))


def template_aligned(
    batch: InrBatch,
    store: InrStore,
    config: TemplateConfig = TemplateConfig(),
    solver: str = "auto",
    progress: bool = True,
) -> InrBatch:
    """``batch`` aligned to the template of ``store``, computing and caching the alignment if needed.

    Every INR ``i`` becomes ``pi_i(ws_i)`` with ``pi_i = argmax_pi <T, pi(ws_i)>``: the same
    function in the template's neuron order (:mod:`dwsjax.templates`), so that two
    aligned INRs can be mixed by plain interpolation (:func:`dwsjax.augment.mixup_prealigned`).

    Args:
        batch: INRs of ``store`` (e.g. ``store.load()`` or a subset).
        store: The INR store whose template to use (:func:`align_store`).
        config: Barycentre rounds, template INRs, sign-awareness, sweeps.
        solver: Assignment solver, ``"auto"``, ``"jax"`` or ``"scipy"``.
        progress: Show a progress bar.

    Returns:
        The :class:`InrBatch` with every INR's weights aligned; labels and ids unchanged.

    Raises:
        ValueError: If ``batch`` holds INRs that are not in ``store``.
    """
    return apply_alignment(batch, align_store(store, config, solver, progress))
