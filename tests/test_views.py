import json
import math

import numpy as np
import pytest

from experiments import views

TINY = [
    "--dataset",
    "synthetic2d",
    "--model",
    "dws",
    "--hidden",
    "8",
    "--objects",
    "24",
    "--max-views",
    "3",
    "--views-list",
    "1,2,3",
    "--val-objects",
    "8",
    "--test-objects",
    "16",
    "--inr-steps",
    "20",
    "--epochs",
    "1",
    "--batch-size",
    "8",
    "--equal-steps",
    "--no-progress",
]


def test_planned_runs_share_the_runs_of_both_experiments():
    args = views.parse_args(["--objects", "20", "--max-views", "5", "--views-list", "1,2,5", "--seeds", "0,1"])
    runs = views.planned_runs(args)
    assert runs[:5] == [(20, 1, 0), (20, 2, 0), (20, 5, 0), (10, 2, 0), (4, 5, 0)]
    assert len(runs) == 10 and len(set(runs)) == 10
    assert views.budget_pairs(12, [1, 5]) == [(12, 1)]
    with pytest.raises(ValueError, match="divides the budget"):
        views.budget_pairs(7, [2, 5])
    with pytest.raises(SystemExit):
        views.parse_args(["--max-views", "2", "--views-list", "1,3"])


@pytest.mark.slow
def test_views_cli_end_to_end_and_resume(tmp_path):
    argv = TINY + ["--cache-dir", str(tmp_path / "cache"), "--out", str(tmp_path / "out")]
    results = views.main(argv)
    # views 1, 2, 3 of 24 objects, plus 12 x 2 and 8 x 3 at the budget of 24 INRs
    expected = {(24, 1), (24, 2), (24, 3), (12, 2), (8, 3)}
    assert results["skipped"] == 0
    out = tmp_path / "out"
    rows = views.read_rows(out / "results.csv")
    assert {(r["objects"], r["views"]) for r in rows} == expected
    for r in rows:
        assert r["train_inrs"] == r["objects"] * r["views"]
        assert r["epochs"] == math.ceil(72 / r["train_inrs"])  # equal steps: those of 1 epoch over 72 INRs
        assert r["internal_inrs"] == r["objects"] * (3 - r["views"])
        assert 0.0 <= r["test_accuracy"] <= 1.0 and 0.0 <= r["train_accuracy"] <= 1.0
        assert np.isnan(r["internal_accuracy"]) == (r["views"] == 3)
    saved = json.loads((out / "results.json").read_text())
    assert set(saved["histories"]) == {views.run_key(n, v, 0) for n, v in expected}
    table = (out / "results.md").read_text()
    assert "| 3 | 72 | 1 |" in table and "| 8 | 3 | 3 |" in table
    assert (out / "views.png").stat().st_size > 0

    before = (out / "results.csv").read_text()
    again = views.main(argv)
    assert again["skipped"] == 5 and (out / "results.csv").read_text() == before
    with pytest.raises(ValueError, match="other settings"):
        views.main(argv[:-2] + ["--epochs", "2", "--out", str(out)])
