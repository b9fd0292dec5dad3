import json

import numpy as np
import pytest

from dwsjax.inr_datasets import InrDatasetConfig, build_inr_store
from dwsjax.models import build_model
from dwsjax.store import select
from dwsjax.train import TrainConfig, train_classifier
from experiments import classify


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


def test_killed_run_resumes_to_the_same_metrics(splits, tmp_path):
    train, val, test, spec = splits
    model = build_model("dws", spec, 10, hidden=8)
    config = TrainConfig(epochs=3, batch_size=20)
    full = train_classifier(model, train, val, test, 10, config, checkpoint_dir=tmp_path / "a", progress=False)
    partial = train_classifier(model, train, val, test, 10, config, checkpoint_dir=tmp_path / "b",
                               progress=False, stop_after_epochs=1)  # fmt: skip
    assert not partial["completed"] and len(partial["epochs"]) == 1
    with pytest.raises(ValueError, match="--resume"):
        train_classifier(model, train, val, test, 10, config, checkpoint_dir=tmp_path / "b", progress=False)
    resumed = train_classifier(model, train, val, test, 10, config, checkpoint_dir=tmp_path / "b",
                               progress=False, resume=True)  # fmt: skip
    assert resumed["completed"] and resumed["best_epoch"] == full["best_epoch"]
    for a, b in zip(full["epochs"], resumed["epochs"]):
        for key in ("train_loss", "val_loss", "test_loss", "val_accuracy", "test_accuracy"):
            np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)


def test_classify_cli_end_to_end(tmp_path):
    argv = [
        "--dataset", "synthetic2d", "--model", "dws", "--hidden", "8", "--augment", "translate,mixup_aligned",
        "--train-objects", "40", "--val-objects", "20", "--test-objects", "20", "--inr-steps", "20",
        "--epochs", "2", "--batch-size", "20", "--cache-dir", str(tmp_path / "cache"),
        "--out", str(tmp_path / "run"), "--plot", "--no-progress",
    ]  # fmt: skip
    results = classify.main(argv)
    assert results["train_inrs"] == 40 and results["val_inrs"] == 20 and results["test_inrs"] == 20
    assert 0.0 <= results["test_accuracy"] <= 1.0
    saved = json.loads((tmp_path / "run" / "results.json").read_text())
    assert len(saved["history"]) == 2
    assert (tmp_path / "run" / "curves.png").stat().st_size > 0
    assert (tmp_path / "run" / "history.csv").read_text().startswith("epoch,")
    with pytest.raises(ValueError, match="--resume"):
        classify.main(argv)
