"""experiments.reproduce: runs are appended once, skipped on rerun, and tabulated over seeds."""

import pytest

from experiments import classify, reproduce


def fake_classify(calls):
    def main(argv):
        args = classify.parse_args(argv)
        calls.append(args)
        return {"dataset": args.dataset, "model": args.model, "augment": args.augment, "views": args.views,
                "seed": args.seed, "test_accuracy": 0.5 + 0.1 * args.seed, "val_accuracy": 0.5, "best_epoch": 1,
                "final_train_accuracy": 0.9, "train_inrs": 48, "params": 10, "train_samples_per_s": 1.0,
                "inr_store_psnr": 30.0}  # fmt: skip

    return main


def test_runs_are_recorded_once_and_tabulated(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(classify, "main", fake_classify(calls))
    argv = ["--set", "smoke", "--seeds", "0,1", "--results-dir", str(tmp_path / "results"),
            "--runs-dir", str(tmp_path / "runs")]  # fmt: skip
    table = reproduce.main(argv).read_text()
    _, runs = reproduce.runs_of("smoke", [0, 1])
    assert len(calls) == len(runs) == 4
    assert all(a.resume and a.dataset == "synthetic2d" for a in calls)
    rows = reproduce.read_rows(tmp_path / "results" / "smoke.csv")
    assert [(r["augment"], r["seed"]) for r in rows] == [(r.augment, str(r.seed)) for r in runs]
    assert "| synthetic2d | dws | none | 1 | 55.0 ± 5.0 | 90.0 | 2 | — |" in table

    reproduce.main(argv)
    assert len(calls) == 4, "a rerun must skip finished runs"


def test_unknown_set_is_rejected():
    with pytest.raises(ValueError, match="unknown set"):
        reproduce.runs_of("nope", [0])


def test_augment_filter_keeps_only_those_cells():
    _, runs = reproduce.runs_of("fmnist-augment", [1, 2], ["none", "mixup_aligned"])
    assert [(r.augment, r.seed) for r in runs] == [("none", 1), ("mixup_aligned", 1), ("none", 2),
                                                   ("mixup_aligned", 2)]  # fmt: skip
    with pytest.raises(ValueError, match="no cells with augmentation"):
        reproduce.runs_of("fmnist-augment", [0], ["rotate"])
