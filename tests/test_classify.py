import json
from pathlib import Path

import jax
import numpy as np
import pytest

from dwsjax.inr_datasets import InrDatasetConfig, build_inr_store
from dwsjax.models import build_model
from dwsjax.optim import TrainRecipe
from dwsjax.recipes import DEFAULT_RECIPE
from dwsjax.run import (
    DEFAULT_EPOCHS,
    RunConfig,
    load_splits,
    resolve_protocol,
    run_classification,
    training_seconds,
)
from dwsjax.store import InrBatch, select
from dwsjax.train import TrainConfig, train_classifier
from dwsjax.weights import finite_rows, mlp_spec, unflatten_weights, weight_stats


def small_config(batch_size: int, epochs: int = 1) -> TrainConfig:
    """A constant-lr AdamW run of ``epochs`` epochs at ``batch_size``."""
    return TrainConfig(TrainRecipe(learning_rate=1e-3, batch_size=batch_size), epochs=epochs)


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("stores")
    train = build_inr_store(root / "train", InrDatasetConfig("synthetic2d", "train", steps=20), 80, progress=False)
    test = build_inr_store(root / "test", InrDatasetConfig("synthetic2d", "test", steps=20), 20, progress=False)
    data = train.load()
    return (
        select(data, data.object_ids < 60),
        select(data, data.object_ids >= 60),
        test.load(),
        train.spec,
    )


@pytest.mark.parametrize("normalization", ["none", "batch"])
def test_killed_run_resumes_to_the_same_metrics(splits, tmp_path, normalization):
    """Also with BatchNorm: its running statistics (and the best epoch's) are checkpointed."""
    train, val, test, spec = splits
    model = build_model("dws", spec, 10, hidden=8, normalization=normalization)
    config = small_config(20, epochs=3)
    full = train_classifier(model, train, val, test, 10, config, checkpoint_dir=tmp_path / "a", progress=False)
    partial = train_classifier(
        model, train, val, test, 10, config, checkpoint_dir=tmp_path / "b", progress=False, stop_after_epochs=1
    )
    assert not partial["completed"] and len(partial["epochs"]) == 1
    with pytest.raises(ValueError, match="--resume"):
        train_classifier(model, train, val, test, 10, config, checkpoint_dir=tmp_path / "b", progress=False)
    resumed = train_classifier(
        model, train, val, test, 10, config, checkpoint_dir=tmp_path / "b", progress=False, resume=True
    )
    assert resumed["completed"] and resumed["best_epoch"] == full["best_epoch"]
    assert resumed["epochs"][0]["epoch_seconds"] == partial["epochs"][0]["epoch_seconds"] > 0, "time kept on resume"
    for a, b in zip(full["epochs"], resumed["epochs"]):
        for key in ("train_loss", "val_loss", "test_loss", "val_accuracy", "test_accuracy"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)


def test_resuming_under_another_configuration_is_refused(splits, tmp_path):
    """A checkpoint continues only the run that wrote it; a constant schedule may run longer."""
    train, val, test, spec = splits
    model = build_model("dws", spec, 10, hidden=8, normalization="none")
    config = small_config(20, epochs=1)
    run = dict(checkpoint_dir=tmp_path, progress=False)
    train_classifier(model, train, val, test, 10, config, facts={"augment": "none"}, **run)
    other_lr = config._replace(recipe=config.recipe._replace(learning_rate=5e-3))
    with pytest.raises(ValueError, match="learning_rate: checkpoint 0.001, now 0.005"):
        train_classifier(model, train, val, test, 10, other_lr, facts={"augment": "none"}, resume=True, **run)
    with pytest.raises(ValueError, match="model.hidden"):
        train_classifier(
            build_model("dws", spec, 10, hidden=4, normalization="none"),
            train,
            val,
            test,
            10,
            config,
            facts={"augment": "none"},
            resume=True,
            **run,
        )
    with pytest.raises(ValueError, match="augment: checkpoint 'none', now 'translate'"):
        train_classifier(model, train, val, test, 10, config, facts={"augment": "translate"}, resume=True, **run)
    longer = train_classifier(
        model, train, val, test, 10, config._replace(epochs=2), facts={"augment": "none"}, resume=True, **run
    )
    assert longer["completed"] and len(longer["epochs"]) == 2 and longer["config"]["epochs"] == 2
    with pytest.raises(ValueError, match="holds 2 trained epochs, more than the 1 asked"):
        train_classifier(model, train, val, test, 10, config, facts={"augment": "none"}, resume=True, **run)
    cosine = config._replace(recipe=config.recipe._replace(decay="cosine"), epochs=2)
    with pytest.raises(ValueError, match="decay"):
        train_classifier(model, train, val, test, 10, cosine, facts={"augment": "none"}, resume=True, **run)


def test_train_step_updates_batchnorm_statistics(splits):
    """A training step with BatchNorm moves the running averages that evaluation uses."""
    from dwsjax.loop import step_key
    from dwsjax.train import create_state, train_step

    train, _, _, spec = splits
    model = build_model("dws", spec, 10, hidden=8, depth=2, normalization="batch")
    state = create_state(model, train, small_config(20))
    assert state.batch_stats
    ws = jax.tree.map(lambda x: x[:20], train.weights)
    new, _, _ = train_step(state, ws, train.labels[:20], step_key(0, 0, 0), weight_stats(train.weights), 10, None)
    moved = jax.tree.map(lambda a, b: float(np.abs(a - b).max()), new.batch_stats, state.batch_stats)
    assert max(jax.tree.leaves(moved)) > 0


def test_classification_run_end_to_end(tmp_path):
    config = RunConfig(
        dataset="synthetic2d",
        model="dws",
        hidden=8,
        augment="translate,mixup_prealigned",
        train_objects=40,
        val_objects=20,
        test_objects=20,
        inr_steps=20,
        epochs=2,
        batch_size=20,
        cache_dir=str(tmp_path / "cache"),
        out=str(tmp_path / "run"),
        plot=True,
        progress=False,
    )
    results = run_classification(config)
    assert results["train_inrs"] == 40 and results["val_inrs"] == 20 and results["test_inrs"] == 20
    assert 0.0 <= results["test_accuracy"] <= 1.0
    assert results["template"]["rounds"] == 3  # the training store was template-aligned, and cached:
    assert len(list((tmp_path / "cache").glob("synthetic2d_train_*/templates/*/align_00000.npz"))) == 1
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert len(saved["history"]) == 2
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0
    assert (tmp_path / "run" / "history.csv").read_text().startswith("epoch,")
    assert results["train_seconds"] == round(sum(e["epoch_seconds"] for e in saved["history"]), 1)
    fresh_cache = str(tmp_path / "fresh_cache")
    with pytest.raises(ValueError, match="--resume"):
        run_classification(config.replace(cache_dir=fresh_cache))
    assert not Path(fresh_cache).exists(), "the run directory is refused before any INR is fitted"


def test_training_seconds_are_unknown_for_epochs_without_a_recorded_time():
    assert training_seconds([{"epoch_seconds": 1.5}, {"epoch_seconds": 2.0}]) == 3.5
    assert training_seconds([{"epoch": 0}, {"epoch_seconds": 2.0}]) is None, "an older checkpoint's epoch"


def test_a_results_row_reads_back_as_its_typed_config():
    row = {
        "dataset": "fmnist",
        "model": "dws",
        "views": "1",
        "seed": "2",
        "epochs": "40",
        "head_hidden": "128",
        "normalization": "",
        "probe_points": "",
        "lr": "0.005",
        "test_accuracy": "0.5",
        "amsgrad": "False",
    }
    config = RunConfig.from_row(row)
    assert (config.seed, config.epochs, config.head_hidden, config.lr, config.amsgrad) == (2, 40, 128, 0.005, False)
    assert config.normalization is None and config.probe_points == 0, "empty cells: None, or the field's default"
    assert config.key()[:6] == ("fmnist", "dws", "none", 1, 2, None)


def test_runs_of_different_view_counts_share_one_store(tmp_path):
    def splits_of(views, store_views=2):
        return load_splits(
            RunConfig(
                dataset="synthetic2d",
                views=views,
                store_views=store_views,
                train_objects=12,
                val_objects=4,
                test_objects=4,
                inr_steps=20,
                cache_dir=str(tmp_path),
                progress=False,
            )
        )

    one, _, _, _ = splits_of(1)
    two, val, _, _ = splits_of(2)
    assert len(list(tmp_path.glob("synthetic2d_train_*"))) == 1, "both runs read the 2-view store"
    assert (len(one.labels), len(two.labels), len(val.labels)) == (12, 24, 4)
    np.testing.assert_array_equal(one.weights.weights[0], select(two, two.view_ids == 0).weights.weights[0])
    with pytest.raises(ValueError, match="--store-views 1 is fewer than --views 2"):
        splits_of(2, store_views=1)


TINY = mlp_spec(2, 4, 1)


def random_inrs(n, seed=0):
    """``n`` Gaussian INRs of a tiny spec, labels ``0, 1, 2, 0, ...``, object ids ``100 + i`` (no fitting)."""
    flat = np.random.default_rng(seed).standard_normal((n, TINY.num_params)).astype(np.float32)
    ids = np.arange(n)
    return InrBatch(unflatten_weights(flat, TINY), ids % 3, ids + 100, np.zeros(n, int))


def with_nan(data, row):
    first = np.array(data.weights.weights[0])
    first[row, 0, 1] = np.nan
    return data._replace(weights=data.weights._replace(weights=(first,) + data.weights.weights[1:]))


def tiny_splits():
    return {"train": random_inrs(8), "val": random_inrs(4, 1), "test": random_inrs(4, 2)}


def train_tiny(sets, num_classes=3, **options):
    model = build_model("mlp", TINY, num_classes, hidden=(8,))
    return train_classifier(
        model, sets["train"], sets["val"], sets["test"], num_classes, small_config(4), progress=False, **options
    )


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_training_refuses_a_nan_inr_naming_split_and_index(split):
    sets = tiny_splits()
    sets[split] = with_nan(sets[split], 3)
    with pytest.raises(
        ValueError,
        match=rf"the {split} set has 1 of \d+ INRs with NaN/inf weights \(indices 3; "
        rf"object ids 103\).*finite_rows",
    ):
        train_tiny(sets)


def test_dropping_the_nan_inrs_as_the_message_says_trains():
    sets = tiny_splits()
    sets["train"] = with_nan(random_inrs(12), 5)
    sets["train"] = select(sets["train"], finite_rows(sets["train"].weights))
    history = train_tiny(sets)
    assert np.isfinite(history["epochs"][0]["train_loss"]) and np.isfinite(history["epochs"][0]["val_loss"])


def test_non_finite_normalisation_statistics_are_refused():
    sets = tiny_splits()
    stats = weight_stats(sets["train"].weights)
    stats = stats._replace(std=jax.tree.map(lambda s: s * np.inf, stats.std))
    with pytest.raises(ValueError, match="normalisation std has NaN/inf entries"):
        train_tiny(sets, stats=stats)


def test_labels_outside_the_classes_are_refused():
    sets = tiny_splits()
    with pytest.raises(ValueError, match=r"the train set has 2 labels outside 0..1 \(indices 2, 5, labels 2, 2\)"):
        train_tiny(sets, num_classes=2)


@pytest.mark.parametrize(
    "epochs,batch_size,message", [(0, 4, "epochs must be >= 1, got 0"), (1, 0, "batch size must be >= 1, got 0")]
)
def test_training_refuses_zero_epochs_or_batch_size(epochs, batch_size, message):
    sets = tiny_splits()
    model = build_model("mlp", TINY, 3, hidden=(8,))
    with pytest.raises(ValueError, match=message):
        train_classifier(
            model, sets["train"], sets["val"], sets["test"], 3, small_config(batch_size, epochs), progress=False
        )


def test_empty_split_is_refused():
    sets = tiny_splits()
    sets["val"] = select(sets["val"], np.zeros(4, bool))
    with pytest.raises(ValueError, match="the val set is empty"):
        train_tiny(sets)


def full_modelnet40_layout(root, points: int = 32):
    """A tiny directory in the full ``modelnet40_normal_resampled`` layout: 40 classes, one train and one
    test shape each, every listed shape present."""
    directory = root / "modelnet40" / "modelnet40_normal_resampled"
    classes = [f"class{i:02d}" for i in range(40)]
    rng = np.random.default_rng(0)
    lists = {"train": [], "test": []}
    for c in classes:
        (directory / c).mkdir(parents=True)
        for split, number in (("train", 1), ("test", 2)):
            shape_id = f"{c}_{number:04d}"
            lines = "\n".join(",".join(f"{v:.4f}" for v in row) for row in rng.uniform(-1, 1, (points, 6)))
            (directory / c / f"{shape_id}.txt").write_text(lines + "\n")
            lists[split].append(shape_id)
    (directory / "modelnet40_shape_names.txt").write_text("\n".join(classes) + "\n")
    for split, ids in lists.items():
        (directory / f"modelnet40_{split}.txt").write_text("\n".join(ids) + "\n")
    return directory


def test_a_full_modelnet40_directory_runs_the_papers_protocol(tmp_path, capsys):
    full_modelnet40_layout(tmp_path)
    config = resolve_protocol(RunConfig(dataset="modelnet40", data_dir=str(tmp_path)))
    assert (config.epochs, config.inr_recipe) == (250, "dwsnets")
    assert "no benchmark" not in capsys.readouterr().out
    given = resolve_protocol(RunConfig(dataset="modelnet40", data_dir=str(tmp_path), epochs=3))
    assert (given.epochs, given.inr_recipe) == (3, "dwsnets")


def test_a_partial_modelnet40_directory_says_it_is_no_benchmark(tmp_path, capsys):
    directory = full_modelnet40_layout(tmp_path)
    (directory / "class07" / "class07_0002.txt").unlink()
    config = resolve_protocol(RunConfig(dataset="modelnet40", data_dir=str(tmp_path)))
    assert (config.epochs, config.inr_recipe) == (DEFAULT_EPOCHS, DEFAULT_RECIPE)
    note = capsys.readouterr().out.strip()
    assert len(note.splitlines()) == 1
    assert "40 of 40 train and 39 of 40 test" in note and "no benchmark" in note
    assert "modelnet40_normal_resampled directory" in note


def test_the_offline_subset_says_it_is_no_benchmark(capsys):
    from tests.test_data import real_dir

    real_dir("modelnet40", "modelnet40_normal_resampled_subset")
    resolve_protocol(RunConfig(dataset="modelnet40"))
    assert "127 of 9843 train and 29 of 2468 test" in capsys.readouterr().out
