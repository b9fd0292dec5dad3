"""experiments.reproduce: runs are appended once, skipped on rerun, and tabulated over seeds."""

from pathlib import Path

import pytest

from dwsjax.files import append_csv_rows, atomic_write_text, csv_text, read_csv_rows
from dwsjax.models import DWSClassifier
from dwsjax.run import RunConfig, inr_store_name
from dwsjax.ssl_run import SslConfig
from experiments import reproduce, reproduce_ssl

RESULTS = Path(__file__).resolve().parents[1] / "results"


def set_argv(name, tmp_path):
    """Seeds 0 and 1 of set ``name`` with results and runs under ``tmp_path``."""
    return [
        "--set",
        name,
        "--seeds",
        "0,1",
        "--results-dir",
        str(tmp_path / "results"),
        "--runs-dir",
        str(tmp_path / "runs"),
    ]


def record_runs(monkeypatch, results_of):
    """Replace ``reproduce.run_classification`` by a stub that records its configs and returns ``results_of``."""
    calls = []

    def run_classification(config):
        assert isinstance(config, RunConfig)
        calls.append(config)
        return results_of(config)

    monkeypatch.setattr(reproduce, "run_classification", run_classification)
    return calls


def classify_results(args):
    layout = {
        field: getattr(DWSClassifier, field) if getattr(args, field) is None else getattr(args, field)
        for field in reproduce.DWS_LAYOUT
    }  # the model's resolved layout, as classify records it
    return {
        **layout,
        "dataset": args.dataset,
        "model": args.model,
        "augment": args.augment,
        "views": args.views,
        "seed": args.seed,
        "test_accuracy": 0.5 + 0.1 * args.seed,
        "val_accuracy": 0.5,
        "best_epoch": 1,
        "epochs": args.epochs,
        "final_train_accuracy": 0.9,
        "train_inrs": 48,
        "params": 10,
        "train_samples_per_s": 1.0,
        "inr_recipe": args.inr_recipe,
        "inr_init": args.inr_init,
        "train_recipe": args.train_recipe,
        "inr_store_psnr": 30.0,
        "inr_store": inr_store_name(args),
    }


def test_runs_are_recorded_once_and_tabulated(tmp_path, monkeypatch):
    calls = record_runs(monkeypatch, classify_results)
    argv = set_argv("smoke", tmp_path)
    table = reproduce.main(argv).read_text()
    runs = reproduce.runs_of("smoke", [0, 1])
    assert len(calls) == len(runs) == 4
    assert all(a.resume and a.dataset == "synthetic2d" for a in calls)
    rows = read_csv_rows(tmp_path / "results" / "smoke.csv")
    assert [(r["augment"], r["seed"]) for r in rows] == [(r.augment, str(r.seed)) for r in runs]
    assert all(a.train_recipe == "dwsnets" for a in calls), "the model's training recipe by default"
    assert [(r["train_objects"], r["epochs"]) for r in rows] == [("48", "2")] * 4
    row = (
        "| synthetic2d | dws | none | 1 | 48 | 2 | dwsnets-fast | dwsnets | batch, sab, head 128 | — "
        "| 55.0 ± 5.0 | 90.0 | 2 | — |"
    )
    assert row in table

    reproduce.main(argv)
    assert len(calls) == 4, "a rerun must skip finished runs"


def test_unknown_set_is_rejected():
    with pytest.raises(ValueError, match="unknown set"):
        reproduce.runs_of("nope", [0])


def test_augment_filter_keeps_only_those_cells():
    """(Of the plain DWS cells: the set also has a probe-feature cell without augmentation.)"""
    runs = reproduce.runs_of("fmnist-augment", [1, 2], ["none", "mixup_aligned"], models=["dws"])
    assert [(r.augment, r.seed) for r in runs] == [("none", 1), ("mixup_aligned", 1), ("none", 2), ("mixup_aligned", 2)]
    with pytest.raises(ValueError, match="no cells with augmentation"):
        reproduce.runs_of("fmnist-augment", [0], ["rotate"])


def test_augment_filter_selects_a_pipeline_cell_written_with_plus():
    augments = reproduce.parse_augments("none, siren_negation+mixup_aligned")
    runs = reproduce.runs_of("fmnist-augment", [0], augments, models=["dws"])
    assert [r.augment for r in runs] == ["none", "siren_negation,mixup_aligned"]
    assert runs[1].name == "dws_siren_negation+mixup_aligned_v1_n2000_dwsnets-fast_s0"


def test_scale_set_runs_each_size_and_plots_accuracy_against_objects(tmp_path, monkeypatch):
    calls = record_runs(monkeypatch, classify_results)
    monkeypatch.setitem(
        reproduce.SETS,
        "scale-smoke",
        [
            (
                reproduce.SETS["smoke"][0][0]._replace(train_objects=n),
                [("dws", "none", 1), ("dws", "mixup_prealigned", 1)],
            )
            for n in (24, 48)
        ],
    )
    reproduce.main(set_argv("scale-smoke", tmp_path))
    assert sorted({(a.train_objects, a.augment) for a in calls}) == [
        (24, "mixup_prealigned"),
        (24, "none"),
        (48, "mixup_prealigned"),
        (48, "none"),
    ]
    assert len({a.out for a in calls}) == len(calls) == 8, "each size has its own run directory"
    assert (tmp_path / "results" / "scale-smoke.png").stat().st_size > 0
    reproduce.main(set_argv("scale-smoke", tmp_path) + ["--train-objects", "48", "--seeds", "0,1,2"])
    assert [(a.train_objects, a.seed) for a in calls[8:]] == [(48, 2), (48, 2)], "only the missing runs of that size"
    with pytest.raises(ValueError, match="no protocol with \\[7\\] training objects"):
        reproduce.runs_of("scale-smoke", [0], train_objects=[7])


def test_the_scale_figure_draws_only_cells_run_at_several_sizes(tmp_path, monkeypatch):
    record_runs(monkeypatch, classify_results)
    reproduce.main(set_argv("smoke", tmp_path) + ["--augment", "none"])
    results = tmp_path / "results"
    rows = read_csv_rows(results / "smoke.csv")
    longer = [{**r, "train_objects": "24", "epochs": "5"} for r in rows]
    atomic_write_text(results / "smoke.csv", csv_text(rows + longer, reproduce.COLUMNS))
    (results / "smoke.png").write_bytes(b"stale")
    assert reproduce.write_scale_curve(results, "smoke") is None, "no cell was run at two sizes"
    assert not (results / "smoke.png").exists(), "a figure the rows no longer support is removed"
    smaller = [{**r, "train_objects": "24"} for r in rows]
    atomic_write_text(results / "smoke.csv", csv_text(rows + smaller + longer, reproduce.COLUMNS))
    assert reproduce.write_scale_curve(results, "smoke").stat().st_size > 0


def test_longer_runs_extend_the_same_run_directory_and_keep_both_rows(tmp_path, monkeypatch):
    calls = record_runs(monkeypatch, classify_results)
    reproduce.main(set_argv("smoke", tmp_path))
    table = reproduce.main(set_argv("smoke", tmp_path) + ["--epochs", "5", "--augment", "none"]).read_text()
    assert [(a.augment, a.epochs) for a in calls[4:]] == [("none", 5), ("none", 5)], "a longer run is not done yet"
    assert [a.out for a in calls[4:]] == [a.out for a in calls[:4] if a.augment == "none"], "it resumes the shorter"
    rows = read_csv_rows(tmp_path / "results" / "smoke.csv")
    assert sorted(r["epochs"] for r in rows if r["augment"] == "none") == ["2", "2", "5", "5"]
    assert "| none | 1 | 48 | 2 |" in table and "| none | 1 | 48 | 5 |" in table
    reproduce.main(set_argv("smoke", tmp_path) + ["--epochs", "5", "--augment", "none"])
    assert len(calls) == 6, "a rerun skips the finished longer runs"


def test_another_inr_recipe_runs_in_its_own_directory_under_the_sets_protocol(tmp_path, monkeypatch):
    calls = record_runs(monkeypatch, classify_results)
    reproduce.main(set_argv("smoke", tmp_path))
    table = reproduce.main(set_argv("smoke", tmp_path) + ["--inr-recipe", "dwsnets", "--augment", "none"]).read_text()
    assert [a.inr_recipe for a in calls[4:]] == ["dwsnets", "dwsnets"], "another recipe's runs are not done yet"
    assert not {a.out for a in calls[4:]} & {a.out for a in calls[:4]}, "nor do they resume the set's runs"
    assert '"inr_recipe": "dwsnets-fast"' in table and '"inr_recipe": "dwsnets"' not in table, "the set's protocol"
    assert "| 48 | 2 | dwsnets-fast |" in table and "| 48 | 2 | dwsnets |" in table


def test_shared_inits_run_in_their_own_directory_and_are_marked_in_the_table(tmp_path, monkeypatch):
    calls = record_runs(monkeypatch, classify_results)
    reproduce.main(set_argv("smoke", tmp_path) + ["--augment", "none"])
    table = reproduce.main(set_argv("smoke", tmp_path) + ["--inr-init", "shared", "--augment", "none"]).read_text()
    assert [a.inr_init for a in calls] == ["independent"] * 2 + ["shared"] * 2, "shared runs are not done yet"
    assert all(Path(a.out).name.endswith(f"_shared_s{a.seed}") for a in calls[2:])
    assert "| 48 | 2 | dwsnets-fast |" in table and "| 48 | 2 | dwsnets-fast, shared init |" in table


def test_rows_of_another_inr_store_are_not_taken_for_done(tmp_path, monkeypatch):
    """A refit draws other INRs (new init keys, say): rows name their store, and only rows of the run's
    store, or rows that name none (written before rows recorded it), count as done."""
    calls = record_runs(monkeypatch, classify_results)
    reproduce.main(set_argv("smoke", tmp_path) + ["--augment", "none"])
    csv_path = tmp_path / "results" / "smoke.csv"
    rows = read_csv_rows(csv_path)
    store = inr_store_name(calls[0])
    assert store.startswith("synthetic2d_train_v1_") and {r["inr_store"] for r in rows} == {store}
    rows[0]["inr_store"], rows[1]["inr_store"] = "synthetic2d_train_v1_0123456789", ""
    atomic_write_text(csv_path, csv_text(rows, reproduce.COLUMNS))
    table = reproduce.main(set_argv("smoke", tmp_path) + ["--augment", "none"]).read_text()
    assert [a.seed for a in calls[2:]] == [0], "seed 0's row names another store, seed 1's none"
    for label in ("store 0123456789", "store not recorded", f"store {store.rsplit('_', 1)[-1]}"):
        assert f"| 2 | dwsnets-fast, {label} | dwsnets |" in table, "cells of different stores are not averaged"


def test_runs_of_another_dws_layout_are_not_taken_for_done(tmp_path, monkeypatch):
    calls = record_runs(monkeypatch, classify_results)
    reproduce.main(set_argv("smoke", tmp_path))
    plain = reproduce.SETS["smoke"][0][0]._replace(normalization="none", set_layer="linear")
    monkeypatch.setitem(reproduce.SETS, "smoke", [(plain, reproduce.SETS["smoke"][0][1])])
    table = reproduce.main(set_argv("smoke", tmp_path)).read_text()
    assert len(calls) == 8 and all(a.normalization == "none" and a.set_layer == "linear" for a in calls[4:])
    assert "| none, linear, head 128 |" in table and "| batch, sab, head 128 |" in table


def record_simclr_runs(monkeypatch):
    """Replace ``reproduce_ssl.run_simclr`` by a stub that records its configs and returns :func:`ssl_results`."""
    calls = []

    def run_simclr(config):
        assert isinstance(config, SslConfig)
        calls.append(config)
        return ssl_results(config)

    monkeypatch.setattr(reproduce_ssl, "run_simclr", run_simclr)
    return calls


def ssl_results(config):
    fractions = [
        {
            "fraction": f,
            "labelled_inrs": round(40 * f),
            "batch_size": 10,
            "scratch_test_accuracy": 0.2 + 0.1 * config.seed,
            "scratch_val_accuracy": 0.2,
            "scratch_best_epoch": 0,
            "simclr_test_accuracy": 0.3,
            "simclr_val_accuracy": 0.3,
            "simclr_best_epoch": 0,
            "random_probe_test_accuracy": 0.15,
            "simclr_probe_test_accuracy": 0.25,
        }
        for f in config.label_fractions
    ]
    return {
        "seed": config.seed,
        "batch_size": config.batch_size,
        "pretrain_final_loss": 3.5,
        "pretrain_final_contrastive_accuracy": 0.1,
        "pretrain_seconds": 2.0,
        "classify_seconds": 3.0,
        "inr_recipe": config.inr_recipe,
        "fractions": fractions,
    }


def test_ssl_set_records_each_seed_once_and_tabulates(tmp_path, monkeypatch):
    calls = record_simclr_runs(monkeypatch)
    argv = set_argv("ssl-smoke", tmp_path)
    table = reproduce.main(argv).read_text()
    assert [(a.seed, a.resume, a.out) for a in calls] == [
        (s, True, str(tmp_path / "runs" / "ssl-smoke" / f"s{s}")) for s in (0, 1)
    ]
    rows = read_csv_rows(tmp_path / "results" / "ssl-smoke.csv")
    assert [(r["seed"], r["fraction"], r["batch_size"]) for r in rows] == [
        ("0", "0.25", "10"),
        ("0", "1.0", "10"),
        ("1", "0.25", "10"),
        ("1", "1.0", "10"),
    ]
    assert "| 25% | 10 | 25.0 ± 5.0 | 30.0 ± 0.0 | 15.0 ± 0.0 | 25.0 ± 0.0 | 2 | 20.0 / 30.0, 30.0 / 30.0 |" in table
    assert "chance log(39) = 3.66" in table, "20 INRs per pre-training batch are 40 views"

    reproduce.main(argv)
    assert len(calls) == 2, "a rerun must skip finished seeds"
    with pytest.raises(ValueError, match="SimCLR set"):
        reproduce.main(argv + ["--augment", "none"])


def test_seeds_of_the_committed_ssl_results_are_recognised_as_done_by_their_config():
    """A seed of results/ssl-fmnist*.csv, read back as the config fields its rows record, is done."""
    for name in ("ssl-fmnist", "ssl-fmnist-no-mixup"):
        rows = read_csv_rows(RESULTS / f"{name}.csv")
        assert all(reproduce_ssl.is_done(rows, reproduce_ssl.seed_config(name, seed)) for seed in (0, 1, 2))
        assert not reproduce_ssl.is_done(rows, reproduce_ssl.seed_config(name, 7)), "no seed 7"
        assert not reproduce_ssl.is_done(rows, reproduce_ssl.seed_config(name, 0, "dwsnets")), "another INR recipe"
    config = reproduce_ssl.seed_config("ssl-fmnist", 1, out=Path("r"), cache_dir="c")
    assert (config.seed, config.inr_recipe, config.resume) == (1, "dwsnets-fast", True)
    assert (config.out, config.cache_dir, config.data_dir) == ("r", "c", None)
    assert (config.label_fractions, config.pretrain_epochs) == ((0.05, 0.2), 12)


def test_results_csv_gains_new_columns_and_refuses_unknown_ones(tmp_path):
    path = tmp_path / "old.csv"
    append_csv_rows(path, [{"seed": 0, "acc": 0.5}], ["seed", "acc"])
    append_csv_rows(path, [{"seed": 1, "acc": 0.6}], ["seed", "acc"])
    assert read_csv_rows(path) == [{"seed": "0", "acc": "0.5"}, {"seed": "1", "acc": "0.6"}]
    append_csv_rows(path, [{"seed": 2, "acc": 0.7, "loss": 1.0}], ["seed", "loss", "acc"])
    assert read_csv_rows(path) == [
        {"seed": "0", "loss": "", "acc": "0.5"},
        {"seed": "1", "loss": "", "acc": "0.6"},
        {"seed": "2", "loss": "1.0", "acc": "0.7"},
    ], "old rows kept, new column empty"
    with pytest.raises(ValueError, match="has columns"):
        append_csv_rows(path, [{"seed": 3, "acc": 0.8}], ["seed", "acc"])


def test_a_run_is_one_typed_config_of_its_protocol_and_cell(tmp_path):
    protocol, _ = reproduce.SETS["modelnet10"][0]
    run = reproduce.Run(protocol, "dws-probe-fixed", "mixup_aligned", 1, 2)
    config = reproduce.run_config(run, tmp_path, None, "c")
    assert (config.model, config.probe_points, config.probe_inputs) == ("dws", 64, "fixed")
    assert (config.dataset, config.train_objects, config.epochs, config.inr_points) == ("modelnet10", 3591, 8, 1024)
    assert (config.seed, config.augment, config.train_recipe) == (2, "mixup_aligned", "dwsnets")
    assert config.out == str(tmp_path)
    assert config.resume and config.plot and config.cache_dir == "c"
    assert reproduce.run_config(reproduce.runs_of("smoke", [0])[0]).inr_points == RunConfig().inr_points


@pytest.mark.parametrize(
    "name, dataset, counts, epochs, views",
    [
        ("fmnist-paper", "fmnist", (55000, 5000, 10000), 300, {1, 10}),
        ("cifar10-paper", "cifar10", (45000, 5000, 10000), 300, {1, 5}),
        ("modelnet40-paper", "modelnet40", (8859, 984, 2468), 250, {1}),
    ],
)
def test_paper_sets_run_the_papers_split_recipes_and_epochs(name, dataset, counts, epochs, views):
    configs = [reproduce.run_config(run) for run in reproduce.runs_of(name, [0])]
    assert {(c.dataset, c.train_objects, c.val_objects, c.test_objects, c.epochs) for c in configs} == {
        (dataset, *counts, epochs)
    }
    assert {(c.model, c.inr_recipe, c.hidden) for c in configs} == {("dws", "dwsnets", 128), ("gnn", "dwsnets", None)}
    assert {c.views for c in configs} == views and "mixup_aligned" in {c.augment for c in configs}
    assert {c.augment for c in configs if c.model == "gnn"} == {"none", "mixup_aligned"}


def test_rows_of_the_committed_results_are_recognised_as_done():
    """A row of results/fmnist-augment.csv, read back as the config it records, matches its run."""
    rows = read_csv_rows(RESULTS / "fmnist-augment.csv")
    runs = reproduce.runs_of("fmnist-augment", [0, 1, 2], ["none", "mixup_aligned"], models=["dws"])
    assert len(runs) == 6 and all(reproduce.is_done(rows, run) for run in runs)
    row = next(r for r in rows if (r["augment"], r["seed"], r["normalization"]) == ("mixup_aligned", "0", "none"))
    config = reproduce.row_config(row)
    assert (config.views, config.seed, config.train_objects, config.epochs, config.head_hidden) == (1, 0, 2000, 40, 128)
    plain = reproduce.FMNIST._replace(normalization="none", set_layer="linear")
    assert reproduce.is_done(rows, reproduce.Run(plain, "dws", "mixup_aligned", 1, 0)), "the older layout's row"
    assert not reproduce.is_done(rows, reproduce.Run(plain, "dws", "mixup_aligned", 1, 7)), "no seed 7"
    plain_row = next(r for r in rows if r["augment"] == "none" and r["normalization"] == "batch")
    probe_row = {**plain_row, "model": "dws-probe"}
    probe = reproduce.Run(reproduce.FMNIST, "dws-probe", "none", 1, int(probe_row["seed"]))
    assert reproduce.is_done([probe_row], probe) and not reproduce.is_done([probe_row], probe._replace(model="dws"))
    assert not reproduce.is_done([probe_row], probe._replace(model="dws-probe-fixed")), "fixed probe inputs differ"
    gnn = reproduce.runs_of("fmnist-gnn", [0], ["none"])[0]
    assert reproduce.is_done(read_csv_rows(RESULTS / "fmnist-gnn.csv"), gnn), "the GNN's head width is no DWS layout"


def test_fit_schedules_runs_are_configs_and_committed_rows_are_done(tmp_path):
    import argparse

    from experiments import fit_schedules

    args = argparse.Namespace(cache_dir="c", data_dir=None, runs_dir=str(tmp_path))
    config = fit_schedules.schedule_config(args, 5e-4, 2000, 40.0, 1)
    assert (config.inr_recipe, config.inr_lr, config.inr_steps, config.inr_target_psnr) == ("dwsnets", 5e-4, 2000, 40.0)
    assert (config.train_objects, config.test_objects, config.epochs, config.seed) == (2000, 1000, 40, 1)
    assert config.out == str(tmp_path / "0.0005_2000_s1") and config.resume and not config.progress
    rows = read_csv_rows(RESULTS / "fit-schedules.csv")
    assert fit_schedules.is_done(rows, 5e-4, 2000, 40.0, 0) and fit_schedules.is_done(rows, 2e-3, 1000, 40.0, 0)
    assert not fit_schedules.is_done(rows, 5e-4, 2000, 40.0, 9)
