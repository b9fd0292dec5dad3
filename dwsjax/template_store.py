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
(:func:`dwsjax.files.exclusive_lock`) and then reads its result.
Permutations rather than aligned weights are kept: the INR store stays the one
copy of the weights, and applying a permutation is cheap.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from dwsjax.files import atomic_write_text, exclusive_lock
from dwsjax.matching import mlp_permutation_spec, permute_neurons
from dwsjax.store import NPZ_ERRORS, InrBatch, InrStore, read_npz, sha256, write_npz
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
        try:
            manifest = json.loads((root / MANIFEST).read_text())
        except (FileNotFoundError, ValueError):  # absent or damaged: start again
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("identity") != identity:
            manifest = {"identity": identity, "rounds_done": -1, "template_sha256": None, "shards": {}}
        self.manifest = manifest

    def save(self) -> None:
        atomic_write_text(self.root / MANIFEST, json.dumps(self.manifest, indent=1))


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
    ws = jax.tree.map(lambda x: np.asarray(x)[: config.template_inrs], store.load().weights)
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
) -> StoreAlignment | None:
    """Align every INR of ``store`` to its template (:mod:`dwsjax.templates`), or load the cached result.

    Resumes a killed run from its last finished barycentre round or shard.
    ``stop_after`` ends this call after that many rounds and shards and returns
    ``None`` (to simulate a killed job in tests). ``solver`` (see
    :func:`dwsjax.matching.resolve_solver`) is not part of the identity: solvers
    agree up to ties. The result is cached in the store's ``templates/`` directory.

    Args:
        store: The INR store whose INRs to align.
        config: Barycentre rounds, template INRs, sign-awareness, sweeps.
        solver: Assignment solver, ``"auto"``, ``"jax"`` or ``"scipy"``.
        progress: Show a progress bar.
        stop_after: End after this many rounds and shards (tests).

    Returns:
        :class:`StoreAlignment`: the template and every INR's signed permutations, by
        ``(object id, view id)``; or ``None`` if ``stop_after`` ended the call first.

    Raises:
        ValueError: If ``config`` is out of range or no INR has finite weights.
    """
    with exclusive_lock(store.root / TEMPLATES, "aligning this INR store"):
        return _align_store(store, config, solver, progress, stop_after)


def _align_store(store: InrStore, config: TemplateConfig, solver: str, progress: bool, stop_after: int | None):
    """:func:`align_store` while holding the lock of the store's template directories."""
    identity = template_identity(store, config)
    root = template_dir(store, config)
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale(store, keep=root)
    state = _Progress(root, identity)
    budget = _Budget(stop_after)
    template = _template(state, store, config, solver, budget)
    if template is None:
        return None
    shards = state.manifest["shards"]
    parts = {i: _read_npz(_shard_path(root, i), shards.get(str(i))) for i in store.done_shards()}
    todo = [i for i, columns in parts.items() if columns is None]
    bar = tqdm(total=len(todo), unit="shard", desc="template alignment", disable=not progress or not todo)
    for index in todo:
        if not budget.take():
            return None
        parts[index] = _align_shard(store, index, template, config, solver)
        shards[str(index)] = write_npz(_shard_path(root, index), parts[index])
        state.save()
        bar.update()
    bar.close()
    hidden = len(store.spec.hidden_widths)
    joined = {k: np.concatenate([columns[k] for columns in parts.values()]) for k in next(iter(parts.values()))}
    return StoreAlignment(
        template,
        joined["object_ids"],
        joined["view_ids"],
        tuple(joined[f"perm_{k}"] for k in range(hidden)),
        tuple(joined[f"sign_{k}"].astype(np.float32) for k in range(hidden)),
        joined["objective"],
    )


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
