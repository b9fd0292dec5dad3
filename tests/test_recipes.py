import jax
import numpy as np
import pytest

import dwsjax as d
from dwsjax.inr_datasets import InrDatasetConfig, build_inr_store
from dwsjax.recipes import RECIPES, fit_recipe


@pytest.mark.parametrize("widths", [(2, 32, 32, 1), (3, 16, 16, 16, 16, 1)])
def test_dwsnets_init_is_the_reference_init(widths):
    """DWSNets nn/inr.py: sine layers (first included) U(+-sqrt(6/d_in)/w0), zero biases;
    the linear last layer nn.Linear's U(+-1/sqrt(d_in)) for weights and bias."""
    spec = d.mlp_spec(*widths)
    ws = d.siren_init_batch(jax.random.split(jax.random.key(0), 64), spec, scheme="dwsnets")
    for i, (w, b) in enumerate(zip(ws.weights, ws.biases)):
        d_in = widths[i]
        w, b = np.asarray(w), np.asarray(b)
        if i < spec.num_layers - 1:
            bound = np.sqrt(6.0 / d_in) / 30.0
            assert np.all(b == 0.0)
        else:
            bound = 1.0 / np.sqrt(d_in)
            assert 0.9 * bound < np.abs(b).max() <= bound
        assert 0.9 * bound < np.abs(w).max() <= bound


def test_sitzmann_init_keeps_its_first_layer_and_random_biases():
    ws = d.siren_init_batch(jax.random.split(jax.random.key(0), 64), d.mlp_spec(2, 32, 32, 1), scheme="sitzmann")
    assert 0.45 < np.abs(np.asarray(ws.weights[0])).max() <= 0.5
    assert all(np.abs(np.asarray(b)).max() > 0 for b in ws.biases)


def test_every_recipe_has_an_image_and_a_shape_variant():
    for name in RECIPES:
        assert fit_recipe(name, "image").init in ("dwsnets", "sitzmann")
        assert fit_recipe(name, "shape").output_offset == 0.0
    assert fit_recipe("dwsnets", "image") == ("dwsnets", 0.5, 5e-4, 10_000, 40.0, 0.0)
    with pytest.raises(ValueError, match="unknown INR recipe 'x'; choose one of"):
        fit_recipe("x", "image")


def test_the_recipe_is_part_of_the_store_identity(tmp_path):
    default = InrDatasetConfig("synthetic2d", "train", steps=5)
    other = default._replace(recipe="sitzmann")
    assert default.identity() != other.identity()
    assert default.identity()["output_offset"] == 0.5 and other.identity()["output_offset"] == 0.0
    build_inr_store(tmp_path, default, objects=2, progress=False)
    with pytest.raises(ValueError, match="recipe: stored 'dwsnets-fast', requested 'sitzmann'"):
        build_inr_store(tmp_path, other, objects=2, progress=False)


def test_the_papers_3d_recipe_is_adamw_and_names_its_own_stores():
    """Shamsian et al. 2024, App. B (ModelNet40 INRs): AdamW, lr 1e-4, 1,000 steps."""
    paper = fit_recipe("dwsnets", "shape")
    assert (paper.learning_rate, paper.steps, paper.weight_decay, paper.target_psnr) == (1e-4, 1000, 0.01, None)
    fast = InrDatasetConfig("modelnet10", "train", n_points=256)
    exact = fast._replace(recipe="dwsnets")
    assert fast.identity() != exact.identity()
    assert "weight_decay" not in fast.identity() and exact.identity()["weight_decay"] == 0.01


def test_fitting_weight_decay_is_pytorchs_adamw():
    """One step of the fitter's AdamW equals optax.adamw (decoupled decay, PyTorch's form)."""
    import optax

    from dwsjax.fit import adam_init, adam_step

    spec = d.mlp_spec(2, 4, 1)
    ws = d.siren_init_batch(jax.random.split(jax.random.key(1), 1), spec)
    grads = jax.tree.map(lambda w: jax.random.normal(jax.random.key(2), w.shape), ws)
    ours, _ = adam_step(ws, grads, adam_init(ws, 1), lr=1e-2, weight_decay=0.5)
    tx = optax.adamw(1e-2, eps=1e-8, weight_decay=0.5)
    updates, _ = tx.update(grads, tx.init(ws), ws)
    for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(optax.apply_updates(ws, updates))):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_shared_inits_name_their_own_stores():
    independent = InrDatasetConfig("synthetic2d", "train", steps=5)
    shared = independent._replace(init="shared")
    assert independent.identity()["init_keys"] == "seed/split/object/view"
    assert shared.identity()["init_keys"] == "seed/view"
    with pytest.raises(ValueError, match="INR init must be one of"):
        independent._replace(init="same").identity()
