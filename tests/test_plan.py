"""dwsjax.plan: a plan counts the work a tiny protocol will do, skips what is cached, and refuses runs it
cannot count."""

import pytest

import dwsjax.plan
from dwsjax.inr_datasets import build_inr_store
from dwsjax.plan import PROBES_FILE, Probes, format_plan, kept_probes, plan
from dwsjax.run import RunConfig, store_configs, store_dir


def tiny(tmp_path, **changes) -> RunConfig:
    config = RunConfig(
        dataset="synthetic2d",
        train_objects=6,
        val_objects=2,
        test_objects=4,
        views=2,
        epochs=3,
        inr_steps=20,
        model="mlp",
        hidden=8,
        batch_size=4,
        cache_dir=str(tmp_path / "cache"),
        progress=False,
    )
    return config.replace(**changes)


@pytest.mark.slow
def test_the_plan_of_a_tiny_protocol_counts_its_work_and_skips_cached_stores(tmp_path):
    config = tiny(tmp_path)
    fit_train, fit_test, train = plan([config])
    assert (fit_train.work, fit_test.work) == ((6 + 2) * 2 * 20, 4 * 20)
    assert train.work == 6 * 2 * 3 + (2 + 4) * 3 and train.unit == "samples"
    assert all(step.seconds > 0 and step.gflop > 0 for step in (fit_train, fit_test, train))
    assert "**total**" in format_plan([fit_train, fit_test, train])

    (test_store, test_objects) = store_configs(config)[1]
    build_inr_store(store_dir(config.cache_dir, test_store.identity()), test_store, test_objects, progress=False)
    probes = kept_probes([config])
    fit_train_again, fit_test_again, train_again, _ = plan([config, config.replace(seed=1)], probes)
    assert (probes.measured, probes.read) == (0, 4), "the first plan's probes are kept in the cache directory"
    assert fit_train_again == fit_train and train_again == train
    assert (fit_test_again.work, fit_test_again.note) == (0, "cached")


def test_kept_probes_are_per_machine_and_a_corrupt_file_is_measured_over(tmp_path, monkeypatch):
    path = tmp_path / "cache" / PROBES_FILE
    probes = Probes(path)
    assert probes.get("train a", lambda: (1.0, 2.0, 3.0)) == (1.0, 2.0, 3.0)
    assert Probes(path).get("train a", lambda: pytest.fail("measured again")) == (1.0, 2.0, 3.0)
    monkeypatch.setattr(dwsjax.plan, "machine", lambda: "another machine")
    assert Probes(path).get("train a", lambda: (4.0, 5.0, 6.0)) == (4.0, 5.0, 6.0)
    path.write_text("{not json")
    with pytest.warns(UserWarning, match="not a probe file"):
        probes = Probes(path)
    assert probes.get("train a", lambda: (7.0, 8.0, 9.0)) == (7.0, 8.0, 9.0) and probes.measured == 1


def test_a_plan_needs_every_object_count(tmp_path):
    with pytest.raises(ValueError, match="--train-objects, --val-objects and --test-objects"):
        plan([tiny(tmp_path, test_objects=None)])


def test_a_step_that_does_not_fit_has_no_time_and_stays_out_of_the_total():
    import math

    from dwsjax.plan import PlanStep

    steps = [
        PlanStep("fit", 100, "INR-steps", 1.0, 120.0),
        PlanStep("train big", 10, "samples", 2.0, math.inf, "does not fit here: out of memory"),
    ]
    table = format_plan(steps)
    assert "| train big | 10 samples | 0.00 | — | does not fit here: out of memory |" in table
    assert "**2.0 min** | without the 1 steps that do not fit |" in table


def test_a_costly_model_is_probed_on_fewer_batches_but_never_fewer_than_the_minimum():
    """DWS-32 on Fashion-MNIST (6.5 GFLOP per step) keeps the full probe; the relational transformer
    (330 GFLOP per step at batch 128) gets the fewest batches instead of minutes of training."""
    batches = [dwsjax.plan.probe_batches(flops) for flops in (1e6, 6.5e9, 2.6e10, 3.3e11, 1e15)]
    assert batches == [16, 16, 4, 4, 4]
    assert dwsjax.plan.probe_batches(1.3e10) == 8
