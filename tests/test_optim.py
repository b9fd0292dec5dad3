"""Training recipes: schedules, clipping, AMSGrad, and how runs resolve them."""

import jax.numpy as jnp
import numpy as np
import pytest

from dwsjax.optim import MODEL_RECIPES, TRAIN_RECIPES, learning_rate_schedule, optimizer, train_recipe
from dwsjax.run import RunConfig, resolved_recipe
from dwsjax.train import TrainConfig


def test_warmup_is_linear_from_the_first_step_then_constant():
    schedule = learning_rate_schedule(1e-3, warmup_steps=4)
    np.testing.assert_allclose([float(schedule(t)) for t in range(6)], [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


def test_cosine_decay_starts_after_warmup_and_ends_at_zero():
    schedule = learning_rate_schedule(1.0, warmup_steps=2, decay="cosine", total_steps=12)
    assert float(schedule(1)) == pytest.approx(1.0)
    assert float(schedule(7)) == pytest.approx(0.5)
    assert float(schedule(12)) == pytest.approx(0.0, abs=1e-7)
    values = [float(schedule(t)) for t in range(1, 13)]
    assert all(a >= b for a, b in zip(values, values[1:]))


def first_update(tx, grads, params):
    updates, _ = tx.update(grads, tx.init(params), params)
    return updates


def test_clipping_rescales_a_large_gradient_to_the_clip_norm():
    """Clip-then-Adam on g equals Adam on g rescaled to norm 10, over two steps (Adam's first
    step alone is scale-free, the second is not)."""
    params = {"w": jnp.ones(3)}
    large, small = {"w": jnp.array([30.0, 40.0, 0.0])}, {"w": jnp.array([1.0, 2.0, 2.0])}
    tx_clip, tx_plain = optimizer(1.0, 0.0, clip_norm=10.0), optimizer(1.0, 0.0)
    state_clip, state_plain = tx_clip.init(params), tx_plain.init(params)
    for g_clip, g_plain in ((large, {"w": large["w"] / 5.0}), (small, small)):
        u_clip, state_clip = tx_clip.update(g_clip, state_clip, params)
        u_plain, state_plain = tx_plain.update(g_plain, state_plain, params)
    np.testing.assert_allclose(u_clip["w"], u_plain["w"], rtol=1e-6)


def test_amsgrad_keeps_the_largest_second_moment():
    params = {"w": jnp.zeros(1)}
    updates = {}
    for amsgrad in (False, True):
        tx = optimizer(1.0, 0.0, amsgrad=amsgrad)
        state = tx.init(params)
        for g in (10.0, 0.1, 0.1, 0.1):
            u, state = tx.update({"w": jnp.array([g])}, state, params)
        updates[amsgrad] = float(jnp.abs(u["w"][0]))
    assert updates[True] < updates[False]


def test_amsgrad_is_pytorchs():
    """Steps of ``torch.optim.AdamW(lr=1, weight_decay=0, amsgrad=True)`` (PyTorch 2.13) on a scalar
    parameter for these gradients: the maximum is over the raw second moment, so a large first
    gradient does not shrink later steps the way ``optax.scale_by_amsgrad``'s does."""
    gradients = (10.0, 0.1, -0.3, 0.1, 2.0, 0.05)
    pytorch_steps = (-1.0, -0.6771646, -0.5040240, -0.4184706, -0.4542730, -0.3938923)
    tx = optimizer(1.0, 0.0, amsgrad=True)
    params = {"w": jnp.zeros(1)}
    state = tx.init(params)
    for g, expected in zip(gradients, pytorch_steps):
        u, state = tx.update({"w": jnp.array([g])}, state, params)
        assert float(u["w"][0]) == pytest.approx(expected, rel=2e-5)


def test_decoupled_weight_decay_follows_the_schedule():
    params = {"w": jnp.full(2, 4.0)}
    tx = optimizer(0.1, 0.5, warmup_steps=2)
    update = first_update(tx, {"w": jnp.zeros(2)}, params)
    np.testing.assert_allclose(update["w"], -0.05 * 0.5 * 4.0)


def test_every_model_has_a_recipe_and_runs_record_it():
    assert set(MODEL_RECIPES.values()) <= set(TRAIN_RECIPES)
    gnn = train_recipe("neural-graphs")
    assert (gnn.learning_rate, gnn.warmup_steps, gnn.clip_norm, gnn.amsgrad, gnn.dropout, gnn.batch_size) == (
        1e-3,
        1000,
        10.0,
        True,
        0.2,
        128,
    )
    config = TrainConfig(gnn, epochs=3, seed=2)
    assert (config.epochs, config.seed, config.batch_size, config.recipe.warmup_steps) == (3, 2, 128, 1000)


def test_config_overrides_the_models_recipe():
    name, recipe = resolved_recipe(RunConfig(model="gnn", lr=3e-4, amsgrad=False))
    assert name == "neural-graphs" and recipe.learning_rate == 3e-4 and not recipe.amsgrad
    assert recipe.warmup_steps == 1000
    name, recipe = resolved_recipe(RunConfig(model="dws", train_recipe="constant"))
    assert name == "constant" and recipe == TRAIN_RECIPES["constant"]


def test_unknown_recipe_and_bad_settings_are_refused():
    with pytest.raises(ValueError, match="unknown training recipe"):
        train_recipe("sgd")
    with pytest.raises(ValueError, match="warmup"):
        learning_rate_schedule(1e-3, warmup_steps=-1)
    with pytest.raises(ValueError, match="clip norm"):
        optimizer(1e-3, 0.0, clip_norm=-1.0)
    with pytest.raises(ValueError, match="total number of steps"):
        learning_rate_schedule(1e-3, decay="cosine")
