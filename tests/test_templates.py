import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dwsjax import image_coords, mlp_spec, siren_apply, siren_init, siren_init_batch, template_store
from dwsjax.augment import build_pipeline, mixup_prealigned, needs_template, random_perms
from dwsjax.matching import alignment_objective, mlp_permutation_spec, permute_neurons
from dwsjax.store import InrStore
from dwsjax.template_store import align_store, apply_alignment, template_dir
from dwsjax.templates import TemplateConfig, align_to

SPEC = mlp_spec(2, 8, 6, 1)
SHARD, SHARDS = 4, 3
CONFIG = TemplateConfig(rounds=2, template_inrs=SHARD)  # as many as a shard holds: one compilation


def write_store(root, shards=SHARDS, seed=0) -> InrStore:
    """A store of random SIRENs (``SHARD`` objects per shard, one view), written without fitting."""
    identity = {"dataset": "random", "spec": list(SPEC.widths), "views": 1, "shard_objects": SHARD, "seed": seed}
    store = InrStore.create_or_resume(root, identity)
    for index in range(shards):
        ids = np.arange(index * SHARD, (index + 1) * SHARD)
        weights = siren_init_batch(jax.random.split(jax.random.fold_in(jax.random.key(seed), index), SHARD), SPEC)
        records = {
            "labels": ids % 3,
            "object_ids": ids,
            "view_ids": np.zeros(SHARD, int),
            "mse": np.zeros(SHARD),
            "psnr": np.full(SHARD, 30.0),
            "steps": np.ones(SHARD, int),
            "status": np.full(SHARD, "ok"),
        }
        store.write_shard(index, records, weights)
    return store


@pytest.fixture(scope="module")
def aligned_store(tmp_path_factory):
    store = write_store(tmp_path_factory.mktemp("store"))
    return store, align_store(store, CONFIG, progress=False)


@pytest.fixture
def work(monkeypatch):
    """Calls of the expensive units: ``("round", None)`` per barycentre round, ``("shard", index)`` per shard."""
    calls = []
    round_, shard = template_store.barycentre_round, template_store._align_shard

    def recording_round(*args):
        calls.append(("round", None))
        return round_(*args)

    def recording_shard(store, index, *args):
        calls.append(("shard", index))
        return shard(store, index, *args)

    monkeypatch.setattr(template_store, "barycentre_round", recording_round)
    monkeypatch.setattr(template_store, "_align_shard", recording_shard)
    return calls


@jax.jit
def render(ws):
    return siren_apply(ws, image_coords(8, 8))


def test_template_alignment_keeps_every_inr_function_and_improves_the_match(aligned_store):
    store, alignment = aligned_store
    raw = store.load()
    aligned = apply_alignment(raw, alignment)
    np.testing.assert_allclose(render(aligned.weights), render(raw.weights), atol=1e-5)
    assert not np.allclose(aligned.weights.weights[1], raw.weights.weights[1])
    before = jax.vmap(alignment_objective, in_axes=(None, 0))(alignment.template, raw.weights)
    after = jax.vmap(alignment_objective, in_axes=(None, 0))(alignment.template, aligned.weights)
    assert np.all(after >= before - 1e-6) and after.mean() > before.mean()
    np.testing.assert_allclose(after, alignment.objective, rtol=1e-5)


def test_non_finite_inrs_keep_their_order():
    ws = siren_init_batch(jax.random.split(jax.random.key(3), SHARD), SPEC)
    ws = ws._replace(biases=(ws.biases[0].at[1, 0].set(jnp.nan), *ws.biases[1:]))
    result, aligned = align_to(jax.tree.map(lambda x: x[0], ws), ws, CONFIG)
    np.testing.assert_array_equal(result.perms[0][1], np.arange(8))
    np.testing.assert_array_equal(aligned.biases[0][1], ws.biases[0][1])


def test_mixup_prealigned_of_an_inr_with_itself_is_that_inr():
    ws, y = siren_init(jax.random.key(1), SPEC), jnp.eye(3)[1]
    mix = jax.jit(mixup_prealigned, static_argnames="permute")
    for lam in (0.0, 0.3, 1.0):
        mixed, label = mix(jax.random.key(2), ws, y, ws, y, lam=lam, permute=False)
        for a, b in zip(jax.tree.leaves(mixed), jax.tree.leaves(ws)):
            np.testing.assert_allclose(a, b, rtol=1e-6)
        np.testing.assert_allclose(label, y)
    permuted, _ = mix(jax.random.key(2), ws, y, ws, y, lam=0.3)
    key_perm = jax.random.split(jax.random.key(2))[1]
    expected = permute_neurons(ws, mlp_permutation_spec(SPEC), random_perms(key_perm, ws))
    for a, b in zip(jax.tree.leaves(permuted), jax.tree.leaves(expected)):
        np.testing.assert_allclose(a, b, rtol=1e-6)
    np.testing.assert_allclose(render(permuted), render(ws), atol=1e-5)


def test_prealigned_presets_and_pipelines():
    assert needs_template("translate,mixup_prealigned:0.5") and needs_template("combination_prealigned")
    assert not needs_template("combination")
    pipe = build_pipeline("combination_prealigned:0.5")
    assert [(s.pairs, s.prob) for s in pipe.steps] == [(False, 0.5), (False, 0.5), (True, 0.5), (False, 0.5)]


@pytest.mark.slow
def test_prealigned_combination_jits_on_a_batch():
    pipe = build_pipeline("combination_prealigned")
    batch = siren_init_batch(jax.random.split(jax.random.key(4), 4), SPEC)
    ws, y = jax.jit(pipe)(jax.random.key(5), batch, jax.nn.one_hot(jnp.arange(4) % 3, 3))
    assert jax.tree.map(jnp.shape, ws) == jax.tree.map(jnp.shape, batch)
    np.testing.assert_allclose(y.sum(-1), 1.0, rtol=1e-6)


def test_killed_template_alignment_resumes_without_loss(aligned_store, tmp_path, work):
    store, complete = aligned_store
    shutil.copytree(store.root, tmp_path / "store", ignore=shutil.ignore_patterns("templates"))
    copy = InrStore.open(tmp_path / "store")
    assert align_store(copy, CONFIG, progress=False, stop_after=1) is None  # killed after round 1 of 2
    assert align_store(copy, CONFIG, progress=False, stop_after=2) is None  # killed after round 2 and shard 0
    assert work == [("round", None), ("round", None), ("shard", 0)]
    work.clear()
    resumed = align_store(copy, CONFIG, progress=False)
    assert work == [("shard", 1), ("shard", 2)]
    for a, b in zip(jax.tree.leaves(resumed), jax.tree.leaves(complete)):
        np.testing.assert_array_equal(a, b)
    work.clear()
    align_store(copy, CONFIG, progress=False)
    assert work == []  # cached


def test_template_is_recomputed_when_the_store_or_settings_change(aligned_store, tmp_path, work):
    store, _ = aligned_store
    shutil.copytree(store.root, tmp_path / "store")
    copy = InrStore.open(tmp_path / "store")
    old = template_dir(copy, CONFIG)
    other = CONFIG._replace(rounds=1)
    align_store(copy, other, progress=False)
    assert work == [("round", None)] + [("shard", i) for i in range(SHARDS)]
    assert template_dir(copy, other) != old and old.exists()  # both settings stay cached
    work.clear()
    extended = write_store(tmp_path / "store", shards=SHARDS + 1)  # one more shard: other INRs
    assert template_dir(extended, CONFIG) != old
    align_store(extended, CONFIG, progress=False)
    assert work == [("round", None)] * 2 + [("shard", i) for i in range(SHARDS + 1)]
    assert not old.exists() and not template_dir(copy, other).exists()  # made for the old store: deleted
    manifest = json.loads((template_dir(extended, CONFIG) / "manifest.json").read_text())
    assert sorted(manifest["shards"]) == ["0", "1", "2", "3"]


def test_alignment_refuses_inrs_it_does_not_hold(aligned_store, tmp_path):
    store, alignment = aligned_store
    other = write_store(tmp_path / "other", shards=SHARDS + 1).load()
    with pytest.raises(ValueError, match="4 INRs .* are not in the template alignment"):
        apply_alignment(other, alignment)


def test_bad_template_settings_are_refused():
    with pytest.raises(ValueError, match="template rounds must be >= 0, got -1"):
        TemplateConfig(rounds=-1).check()


def test_two_aligners_of_one_store_take_turns_and_agree(aligned_store, tmp_path, work):
    """Two jobs aligning one store at once (threads here; the lock is per open file, as between processes):
    one computes, the other waits and reads its result; nothing is computed twice."""
    from concurrent.futures import ThreadPoolExecutor

    store, complete = aligned_store
    shutil.copytree(store.root, tmp_path / "store", ignore=shutil.ignore_patterns("templates"))
    copy = InrStore.open(tmp_path / "store")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: align_store(copy, CONFIG, progress=False), range(2)))
    assert sorted(work, key=str) == sorted(
        [("round", None)] * CONFIG.rounds + [("shard", i) for i in range(SHARDS)], key=str
    )
    for result in results:
        for a, b in zip(jax.tree.leaves(result), jax.tree.leaves(complete)):
            np.testing.assert_array_equal(a, b)


def test_two_workers_split_one_alignment_and_equal_one_process(aligned_store, tmp_path, work):
    """Workers (0, 2) and (1, 2), as two processes of a jax.distributed job would be (threads here): worker 0
    computes the template, each aligns the shards of its index modulo 2, both return the one-process result."""
    from concurrent.futures import ThreadPoolExecutor

    store, complete = aligned_store
    shutil.copytree(store.root, tmp_path / "store", ignore=shutil.ignore_patterns("templates"))
    copy = InrStore.open(tmp_path / "store")
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda i: align_store(copy, CONFIG, progress=False, worker=(i, 2)), range(2)))
    assert sorted(work, key=str) == sorted(
        [("round", None)] * CONFIG.rounds + [("shard", i) for i in range(SHARDS)], key=str
    )
    for result in results:
        for a, b in zip(jax.tree.leaves(result), jax.tree.leaves(complete)):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="worker 2 of 2"):
        align_store(copy, CONFIG, progress=False, worker=(2, 2))
