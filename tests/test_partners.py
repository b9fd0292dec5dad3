"""MixUp partner pools (dwsjax.run.partner_pool) and the released code's training recipe."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dwsjax.augment import build_pipeline
from dwsjax.batching import partner_indices
from dwsjax.models import build_model
from dwsjax.optim import TrainRecipe, optimizer, train_recipe
from dwsjax.run import RunConfig, load_splits, partner_pool
from dwsjax.store import InrBatch
from dwsjax.train import BestValidation, Metrics, TrainConfig, train_classifier
from dwsjax.weights import mlp_spec, unflatten_weights
from experiments.reproduce import Run, is_done, runs_of

SPEC = mlp_spec(2, 4, 1)


def store_config(tmp_path, store_views: int, partners: str = "store") -> RunConfig:
    return RunConfig(
        dataset="synthetic2d",
        views=1,
        store_views=store_views,
        train_objects=8,
        val_objects=4,
        test_objects=4,
        inr_steps=10,
        augment="mixup_aligned",
        mixup_partners=partners,
        cache_dir=str(tmp_path),
        progress=False,
    )


def test_store_partners_come_from_other_views_of_training_objects_only(tmp_path):
    config = store_config(tmp_path, store_views=3)
    train, val, test, store = load_splits(config)
    pool = partner_pool(config, train, store)
    assert set(train.view_ids) == {0} and len(pool.labels) == 3 * len(train.labels)
    assert set(pool.object_ids) == set(train.object_ids), "never a validation object's views"
    assert not set(pool.object_ids) & set(val.object_ids)
    drawn = np.concatenate([partner_indices(jax.random.key(s), len(pool.labels), 8) for s in range(20)])
    assert set(pool.view_ids[drawn]) == {0, 1, 2}, "partners from views the anchors never train on"
    assert np.mean(pool.view_ids[drawn] > 0) > 0.5
    assert partner_pool(config.replace(augment="none"), train, store) is None, "no MixUp, no pool"
    assert partner_pool(config.replace(mixup_partners="batch"), train, store) is None


def test_partner_draws_are_uniform_and_a_function_of_the_key():
    key = jax.random.key(3)
    np.testing.assert_array_equal(partner_indices(key, 10, 64), partner_indices(key, 10, 64))
    counts = np.bincount(np.concatenate([partner_indices(jax.random.key(s), 10, 100) for s in range(50)]), minlength=10)
    assert counts.min() > 400 and counts.max() < 600, counts


def test_one_view_store_gives_the_same_pool_and_run_for_train_and_store_partners(tmp_path):
    config = store_config(tmp_path, store_views=1)
    train, val, test, store = load_splits(config)
    pools = {p: partner_pool(config.replace(mixup_partners=p), train, store) for p in ("train", "store")}
    for a, b in zip(jax.tree.leaves(pools["train"]), jax.tree.leaves(pools["store"])):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    model = build_model("dws", store.spec, 10, hidden=4)
    recipe = TrainConfig(TrainRecipe(learning_rate=1e-3, batch_size=4), epochs=1)
    augment = build_pipeline("mixup")
    histories = [
        train_classifier(model, train, val, test, 10, recipe, augment, progress=False, partners=pool)
        for pool in pools.values()
    ]
    assert histories[0]["epochs"][0]["train_loss"] == histories[1]["epochs"][0]["train_loss"]


def test_pipeline_mixes_each_sample_with_its_given_partner():
    rng = np.random.default_rng(0)
    ws_a, ws_b = (
        unflatten_weights(jnp.asarray(rng.standard_normal((5, SPEC.num_params)), jnp.float32), SPEC) for _ in range(2)
    )
    y_a, y_b = jax.nn.one_hot(jnp.arange(5) % 3, 3), jax.nn.one_hot(jnp.arange(5) % 2, 3)
    ws, y = build_pipeline("mixup", lam=0.25)(jax.random.key(0), ws_a, y_a, (ws_b, y_b))
    for got, a, b in zip(jax.tree.leaves(ws), jax.tree.leaves(ws_a), jax.tree.leaves(ws_b)):
        np.testing.assert_allclose(got, 0.25 * a + 0.75 * b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(y, 0.25 * y_a + 0.75 * y_b, rtol=1e-6)


def test_a_pool_of_another_architecture_is_refused():
    flat = np.zeros((8, SPEC.num_params), np.float32)
    train = InrBatch(unflatten_weights(flat, SPEC), np.arange(8) % 2, np.arange(8), np.zeros(8, int))
    other = mlp_spec(2, 5, 1)
    pool = InrBatch(
        unflatten_weights(np.zeros((4, other.num_params), np.float32), other),
        np.zeros(4, int),
        *2 * (np.zeros(4, int),),
    )
    model = build_model("dws", SPEC, 2, hidden=4)
    with pytest.raises(ValueError, match="MixUp partner pool needs two networks of one architecture"):
        train_classifier(
            model, train, train, train, 2, TrainConfig(TrainRecipe(1e-3, batch_size=4)), progress=False, partners=pool
        )


def test_partner_cells_are_their_own_runs_in_a_set():
    runs = runs_of("fmnist-partners", [0])
    names = [r.name for r in runs]
    assert len(set(names)) == len(names) == 5
    store_run = next(r for r in runs if r.protocol.mixup_partners == "store")
    batch_run = next(
        r for r in runs if r.protocol.mixup_partners is None and r.augment == "mixup_aligned" and r.views == 1
    )
    assert "_pstore_" in store_run.name and "_pstore_" not in batch_run.name
    row = {
        "dataset": "fmnist",
        "model": "dws",
        "augment": "mixup_aligned",
        "views": "1",
        "seed": "0",
        "train_objects": "2000",
        "epochs": "40",
        "inr_recipe": "dwsnets-fast",
        "train_recipe": "dwsnets",
        "store_views": "10",
    }
    assert is_done([row], batch_run) and not is_done([row], store_run)
    assert is_done([{**row, "mixup_partners": "store"}], store_run)
    none_run = Run(store_run.protocol, "dws", "none", 1, 0)
    assert is_done([{**row, "augment": "none"}], none_run), "without MixUp the partner pool does not matter"


def test_released_recipe_is_adam_with_l2_and_a_1000_step_warmup():
    recipe = train_recipe("dws-augmentations")
    assert (recipe.learning_rate, recipe.batch_size, recipe.warmup_steps, recipe.weight_decay) == (
        1e-3,
        256,
        1000,
        5e-4,
    )
    assert not recipe.decoupled_weight_decay and not recipe.amsgrad and recipe.ties == "latest"
    tx = optimizer(recipe.learning_rate, recipe.weight_decay, recipe.warmup_steps, decoupled_weight_decay=False)
    w, g = jnp.array([1.0, -2.0, 0.5]), jnp.array([0.1, 0.3, -0.2])
    state, m, v = tx.init(w), 0.0, 0.0
    for t in range(1, 4):  # torch.optim.Adam(weight_decay=wd): g + wd * w enters the moments
        grad = g + recipe.weight_decay * w
        m, v = 0.9 * m + 0.1 * grad, 0.999 * v + 0.001 * grad**2
        lr = 1e-3 * min(1.0, t / 1000)
        expected = w - lr * (m / (1 - 0.9**t)) / (jnp.sqrt(v / (1 - 0.999**t)) + 1e-8)
        updates, state = tx.update(g, state, w)
        w = optax.apply_updates(w, updates)
        np.testing.assert_allclose(w, expected, rtol=1e-6)


@pytest.mark.parametrize("ties, best", [("earliest", 1), ("latest", 2)])
def test_tie_rule_picks_the_earliest_or_latest_equal_validation_epoch(ties, best):
    accuracies = iter([0.5, 0.7, 0.7, 0.6])
    measure = lambda state, data: Metrics(0.0, next(accuracies) if data == "val" else 0.0)  # noqa: E731
    tracker = BestValidation(None, measure, "val", "test", ties)
    history = {"best_val_accuracy": -1.0}
    for epoch in range(3):
        tracker(epoch, epoch, history)
    assert history["best_epoch"] == best
    with pytest.raises(ValueError, match="ties must be one of"):
        BestValidation(None, measure, "val", "test", "middle")


def test_the_exact_recipe_partner_set_runs_the_same_cells_on_exact_recipe_inrs():
    default, exact = runs_of("fmnist-partners", [0]), runs_of("fmnist-partners-exact", [0])
    assert [(r.model, r.augment, r.views, r.protocol.mixup_partners) for r in exact] == [
        (r.model, r.augment, r.views, r.protocol.mixup_partners) for r in default
    ]
    assert {r.protocol.inr_recipe for r in exact} == {"dwsnets"}
    assert not {r.name for r in exact} & {r.name for r in default}
