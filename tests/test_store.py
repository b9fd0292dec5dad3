import json
import shutil

import jax
import numpy as np
import pytest

from dwsjax import inr_datasets
from dwsjax.inr_datasets import InrDatasetConfig, build_inr_store
from dwsjax.store import InrBatch, InrStore, iterate_batches, objects_in_order
from experiments import fit_inrs

CONFIG = InrDatasetConfig("synthetic2d", "train", views=2, steps=20, shard_objects=4)


@pytest.fixture(scope="module")
def complete_store(tmp_path_factory):
    return build_inr_store(tmp_path_factory.mktemp("a"), CONFIG, objects=10, progress=False)


def assert_same_inrs(a: InrBatch, b: InrBatch):
    np.testing.assert_array_equal(a.labels, b.labels)
    np.testing.assert_array_equal(a.object_ids, b.object_ids)
    np.testing.assert_array_equal(a.view_ids, b.view_ids)
    for x, y in zip(jax.tree.leaves(a.weights), jax.tree.leaves(b.weights)):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-7)


@pytest.fixture
def fitted_objects(monkeypatch):
    """The object ids fitted by each ``fit_rows`` call (one list per call)."""
    calls = []
    original = inr_datasets.fit_rows

    def recording(targets, rows, *args):
        calls.append(sorted(set(targets.object_ids[rows].tolist())))
        return original(targets, rows, *args)

    monkeypatch.setattr(inr_datasets, "fit_rows", recording)
    return calls


def test_killed_fit_resumes_from_its_last_part(complete_store, tmp_path, monkeypatch, fitted_objects):
    monkeypatch.setattr(inr_datasets, "PART_OBJECTS", 3)  # shards of 4 objects: parts of 3 and 1
    original = InrStore.write_part

    def killed_at_the_fourth_part(self, index, part, columns):
        if len(fitted_objects) == 4:
            raise KeyboardInterrupt("killed")
        original(self, index, part, columns)

    monkeypatch.setattr(InrStore, "write_part", killed_at_the_fourth_part)
    with pytest.raises(KeyboardInterrupt):
        build_inr_store(tmp_path, CONFIG, objects=10, progress=False)
    monkeypatch.setattr(InrStore, "write_part", original)
    assert InrStore.open(tmp_path).done_shards() == [0]
    assert sorted(p.name for p in tmp_path.glob("*.part*")) == ["shard_00001.part00.npz"]
    (tmp_path / "shard_00001.npz").write_bytes(b"half-written garbage")  # not in the manifest: ignored

    fitted_objects.clear()
    resumed = build_inr_store(tmp_path, CONFIG, objects=10, progress=False)
    assert fitted_objects == [[7], [8, 9]]  # only the lost part and the shard never started
    assert not list(tmp_path.glob("*.part*"))
    assert len(resumed.load().labels) == 20
    assert_same_inrs(complete_store.load(), resumed.load())


def damage(path, how: str) -> None:
    raw = path.read_bytes()
    if how == "truncated":
        path.write_bytes(raw[: len(raw) // 2])
    elif how == "bit-flipped":
        path.write_bytes(raw[:1000] + bytes([raw[1000] ^ 0x10]) + raw[1001:])
    else:
        path.unlink()


@pytest.mark.parametrize("how", ["truncated", "bit-flipped", "deleted"])
def test_damaged_shard_is_named_on_load_and_refitted_by_a_rerun(complete_store, tmp_path, how, fitted_objects):
    root = tmp_path / "store"
    shutil.copytree(complete_store.root, root)
    damage(root / "shard_00001.npz", how)
    with pytest.raises(ValueError, match=r"INR shard \S*shard_00001.npz is damaged: .*Rerun the command"):
        InrStore.open(root).load()
    with pytest.warns(UserWarning, match=r"shard_00001.npz is damaged: .*; refitting objects 4..7"):
        repaired = build_inr_store(root, CONFIG, objects=10, progress=False)
    assert fitted_objects == [[4, 5, 6, 7]]
    assert_same_inrs(complete_store.load(), repaired.load())


def test_shards_written_without_checksums_are_verified_and_upgraded(complete_store, tmp_path, fitted_objects):
    root = tmp_path / "store"
    shutil.copytree(complete_store.root, root)
    manifest = json.loads((root / "manifest.json").read_text())
    for entry in manifest["shards"].values():
        del entry["sha256"]
    (root / "manifest.json").write_text(json.dumps(manifest))
    damage(root / "shard_00002.npz", "bit-flipped")
    with pytest.raises(ValueError, match=r"shard_00002.npz is damaged: cannot read it \(BadZipFile: Bad CRC-32"):
        InrStore.open(root).load()
    with pytest.warns(UserWarning, match="shard_00002.npz is damaged"):
        build_inr_store(root, CONFIG, objects=10, progress=False)
    assert fitted_objects == [[8, 9]]
    shards = json.loads((root / "manifest.json").read_text())["shards"]
    assert shards == json.loads((complete_store.root / "manifest.json").read_text())["shards"]


def test_a_store_with_more_objects_serves_fewer_without_refitting(complete_store, tmp_path, monkeypatch):
    shutil.copytree(complete_store.root, tmp_path / "store")

    def refuse(*_):
        raise AssertionError("a shard was refitted")

    monkeypatch.setattr(InrStore, "write_part", refuse)
    monkeypatch.setattr(InrStore, "finish_shard", refuse)
    store = build_inr_store(tmp_path / "store", CONFIG, objects=9, progress=False)
    assert len(store.load().labels) == 20


def test_store_records_and_batches(complete_store):
    data = complete_store.load()
    assert data.weights.batch_shape == (20,)
    np.testing.assert_array_equal(data.view_ids, np.tile([0, 1], 10))
    np.testing.assert_array_equal(data.object_ids, np.repeat(np.arange(10), 2))
    assert complete_store.summary()["ok"] == 20
    assert complete_store.metadata["kind"] == "image" and complete_store.activation == "sine"
    one_view = complete_store.load(views=1)
    assert set(one_view.view_ids.tolist()) == {0}
    batches = list(iterate_batches(data, 8, jax.random.key(0)))
    assert [len(b.labels) for b in batches] == [8, 8, 4]
    assert sorted(np.concatenate([b.object_ids for b in batches]).tolist()) == sorted(data.object_ids.tolist())


def test_store_refuses_a_different_config(complete_store):
    with pytest.raises(ValueError, match="different configuration.*steps: stored 20, requested 30"):
        build_inr_store(complete_store.root, CONFIG._replace(steps=30), objects=10, progress=False)


def test_corrupt_or_missing_store_is_a_clear_error(complete_store, tmp_path):
    with pytest.raises(FileNotFoundError, match="no INR store"):
        InrStore.open(tmp_path / "nothing")
    broken = tmp_path / "broken"
    broken.mkdir()
    manifest = json.loads((complete_store.root / "manifest.json").read_text())
    (broken / "manifest.json").write_text(json.dumps(manifest))
    for index in (0, 1, 2):
        (broken / f"shard_{index:05d}.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="shard_00000.npz is damaged"):
        InrStore.open(broken).load()


def test_diverged_fits_are_flagged_not_stored_as_good(tmp_path):
    store = build_inr_store(tmp_path, CONFIG._replace(learning_rate=1e4), objects=4, progress=False)
    summary = store.summary()
    assert summary["ok"] < 8 and summary["nan"] + summary["diverged"] + summary["ok"] == 8
    assert len(store.load(include_failed=True).labels) == 8
    assert len(store.load().labels) == summary["ok"]


def test_fit_inrs_cli(tmp_path, capsys):
    argv = ["--dataset", "synthetic2d", "--objects", "4", "--steps", "20", "--views", "2", "--shard-objects", "4"]
    summary = fit_inrs.main(argv + ["--out", str(tmp_path)])
    assert summary["inrs"] == 8 and summary["ok"] == 8
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["inrs"] == 8


def test_objects_follow_fitting_order_not_id_order():
    """Shuffled loaders (ModelNet) keep official ids; "the first N objects" must be the first fitted."""
    ids = np.array([7, 7, 2, 9, 2, 9])
    batch = InrBatch(None, np.zeros(6), ids, np.array([0, 1, 0, 0, 1, 1]))
    np.testing.assert_array_equal(objects_in_order(batch), [7, 2, 9])


FIT_AS_WORKER = """
import sys
import jax

out, process, processes, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if processes > 1:
    jax.distributed.initialize(f"localhost:{port}", num_processes=processes, process_id=process)
from dwsjax.inr_datasets import InrDatasetConfig, build_inr_store

config = InrDatasetConfig("synthetic2d", "train", steps=20, shard_objects=4)
build_inr_store(out, config, objects=14, progress=False)
"""


@pytest.mark.slow
def test_two_processes_of_a_distributed_job_fit_the_store_one_process_fits(tmp_path):
    """jax.distributed processes each fit their share of the shards (index modulo process count) and wait
    for the others: shard by shard, the store equals one process's, and every shard is recorded."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = str(s.getsockname()[1])
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1", "JAX_PLATFORMS": "cpu"}

    def start(out, process, processes):
        args = [sys.executable, "-c", FIT_AS_WORKER, str(out), str(process), str(processes), port]
        return subprocess.Popen(args, env=env)

    jobs = [start(tmp_path / "two", i, 2) for i in range(2)] + [start(tmp_path / "one", 0, 1)]
    assert [job.wait(timeout=600) for job in jobs] == [0, 0, 0]
    two, one = InrStore.open(tmp_path / "two"), InrStore.open(tmp_path / "one")
    assert two.done_shards() == one.done_shards() == [0, 1, 2, 3]
    for index in one.done_shards():
        a, b = two.read_shard(index), one.read_shard(index)
        assert a.keys() == b.keys()
        for key in a:
            np.testing.assert_array_equal(a[key], b[key])


def test_a_store_evaluates_shard_by_shard_as_loaded_whole(complete_store):
    """evaluate_store reads one shard at a time and gives evaluate()'s loss and accuracy on store.load()."""
    from dwsjax.batching import batch_shardings
    from dwsjax.models import build_model
    from dwsjax.optim import TrainRecipe
    from dwsjax.train import TrainConfig, create_state, evaluate, evaluate_store
    from dwsjax.weights import weight_stats

    whole = complete_store.load(views=1)
    assert_same_inrs(whole, jax.tree.map(lambda *xs: np.concatenate(xs), *complete_store.shard_batches(views=1)))
    model = build_model("dws", complete_store.spec, 10, hidden=4, depth=2, normalization="batch")
    state = create_state(model, whole, TrainConfig(TrainRecipe(learning_rate=1e-3, batch_size=4), epochs=1))
    stats = weight_stats(whole.weights)
    streamed = evaluate_store(state, complete_store, stats, 10, batch_size=3, views=1)
    loaded = evaluate(state, whole, stats, 10, 3, batch_shardings()[0])
    np.testing.assert_allclose(streamed, loaded, rtol=1e-5)


def test_bench_store_reads_every_inr_whole_and_shard_by_shard(tmp_path):
    from experiments import bench_store

    lines = bench_store.main(["--store", str(tmp_path / "random"), "--make", "10"])
    assert [(line["mode"], line["inrs"]) for line in lines] == [("baseline", 0), ("load", 10), ("shards", 10)]


def test_asking_for_more_objects_than_the_split_holds_fails_before_fitting(tmp_path):
    config = InrDatasetConfig("synthetic3d", "test", steps=20)
    with pytest.raises(ValueError, match=r"synthetic3d/test holds 200 objects, fewer than the 201 asked for"):
        build_inr_store(tmp_path / "store", config, objects=201, progress=False)
    assert not (tmp_path / "store").exists()
