import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dwsjax.plots import pca_2d
from dwsjax.ssl import contrastive_accuracy, linear_probe_accuracy, nt_xent, simclr_model
from dwsjax.ssl_run import SslConfig, check_fractions, run_simclr
from dwsjax.train import overlay_params

nt_xent = jax.jit(nt_xent, static_argnames="temperature")
contrastive_accuracy = jax.jit(contrastive_accuracy)


def _embeddings(seed, n=16, d=8):
    return jax.random.normal(jax.random.key(seed), (n, d))


def test_nt_xent_prefers_aligned_pairs():
    z = _embeddings(0)
    noisy = z + 0.05 * _embeddings(1)
    aligned, unrelated = nt_xent(z, noisy), nt_xent(z, _embeddings(2))
    assert np.isfinite(aligned) and np.isfinite(unrelated)
    assert aligned < unrelated
    assert contrastive_accuracy(z, noisy) == 1.0


def test_nt_xent_is_invariant_to_a_consistent_batch_permutation_and_to_scale():
    z_a, z_b = _embeddings(0), _embeddings(1)
    perm = jax.random.permutation(jax.random.key(3), 16)
    np.testing.assert_allclose(nt_xent(z_a, z_b), nt_xent(z_a[perm], z_b[perm]), rtol=1e-5)
    np.testing.assert_allclose(nt_xent(z_a, z_b), nt_xent(z_b, z_a), rtol=1e-5)
    np.testing.assert_allclose(nt_xent(z_a, z_b), nt_xent(3.0 * z_a, 0.5 * z_b), rtol=1e-5)


def test_nt_xent_lower_bound_and_finite_gradients():
    """Identical, orthogonal unit views reach ``log(1 + (2B - 2) e^{-1/tau})`` at temperature tau."""
    z = jnp.eye(4)
    tau = 0.5
    np.testing.assert_allclose(nt_xent(z, z, tau), np.log(1 + 6 * np.exp(-1 / tau)), rtol=1e-5)
    grads = jax.grad(nt_xent)(_embeddings(0), _embeddings(1))
    assert np.all(np.isfinite(grads))
    with pytest.raises(ValueError, match="temperature"):
        nt_xent(z, z, 0.0)
    with pytest.raises(ValueError, match="contrastive pairs"):
        nt_xent(z, z[:3])


def test_overlay_params_keeps_the_fresh_head_and_checks_shapes():
    fresh = {"encoder": {"w": jnp.zeros(3)}, "head": {"w": jnp.zeros(2)}}
    merged = overlay_params(fresh, {"encoder": {"w": np.ones(3)}})
    np.testing.assert_array_equal(merged["encoder"]["w"], np.ones(3))
    np.testing.assert_array_equal(merged["head"]["w"], np.zeros(2))
    with pytest.raises(ValueError, match="lacks"):
        overlay_params(fresh, {"projection": {}})
    with pytest.raises(ValueError, match="shape"):
        overlay_params(fresh, {"encoder": {"w": np.ones(4)}})


def test_simclr_model_needs_a_features_method():
    class NoFeatures:
        pass

    with pytest.raises(ValueError, match="features"):
        simclr_model(NoFeatures())


def test_pca_and_fractions():
    x = np.random.default_rng(0).normal(size=(50, 6)) * np.array([5.0, 1, 1, 1, 1, 0.1])
    xy = pca_2d(x)
    assert xy.shape == (50, 2) and np.var(xy[:, 0]) >= np.var(xy[:, 1])
    check_fractions((0.05, 0.1))
    for fractions in ((0.0, 1.0), (1.5,), ()):
        with pytest.raises(ValueError, match="label-fractions"):
            check_fractions(fractions)


def test_linear_probe_reads_classes_from_informative_features_only():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    informative = np.eye(3)[labels] * 4.0 + rng.normal(size=(300, 3))
    noise = rng.normal(size=(300, 5))
    train, test = slice(0, 200), slice(200, 300)
    assert linear_probe_accuracy(informative[train], labels[train], informative[test], labels[test]) > 0.95
    assert linear_probe_accuracy(noise[train], labels[train], noise[test], labels[test]) < 0.5
    with pytest.raises(ValueError, match="labels"):
        linear_probe_accuracy(noise[train], labels[test], noise[test], labels[test])
    with pytest.raises(ValueError, match="one F"):
        linear_probe_accuracy(noise[train], labels[train], informative[test], labels[test])


def _random_inrs(spec, n):
    from dwsjax.store import InrBatch
    from dwsjax.weights import WeightSpace

    keys = iter(jax.random.split(jax.random.key(0), 2 * spec.num_layers))
    ws = WeightSpace(
        tuple(jax.random.normal(next(keys), (n, i, o)) for i, o in spec.layer_shapes),
        tuple(jax.random.normal(next(keys), (n, o)) for _, o in spec.layer_shapes),
    )
    zeros = np.zeros(n, np.int64)
    return InrBatch(jax.tree.map(np.asarray, ws), zeros, np.arange(n), zeros)


@pytest.mark.slow
def test_killed_pretraining_resumes_to_the_same_encoder(tmp_path):
    from dwsjax.augment import build_pipeline
    from dwsjax.models import build_model
    from dwsjax.optim import TrainRecipe
    from dwsjax.ssl import pretrain_simclr
    from dwsjax.train import TrainConfig
    from dwsjax.weights import mlp_spec

    spec = mlp_spec(2, 6, 6, 1)
    data = _random_inrs(spec, 24)
    backbone = build_model("dws", spec, 10, hidden=4, depth=1, normalization="none")
    model = simclr_model(backbone, projection_hidden=8, projection_dim=8)
    config = TrainConfig(TrainRecipe(learning_rate=1e-3, batch_size=8), epochs=2)
    augment = build_pipeline("gaussian_noise,siren_negation")
    full, history = pretrain_simclr(model, data, config, augment, progress=False)
    assert history["completed"] and all(np.isfinite(e["loss"]) for e in history["epochs"])
    run = dict(checkpoint_dir=tmp_path / "ckpt", progress=False)
    _, partial = pretrain_simclr(model, data, config, augment, stop_after_epochs=1, **run)
    assert not partial["completed"]
    with pytest.raises(ValueError, match="--resume"):
        pretrain_simclr(model, data, config, augment, **run)
    resumed, history_resumed = pretrain_simclr(model, data, config, augment, resume=True, **run)
    assert history_resumed["completed"]
    np.testing.assert_allclose(history["epochs"][-1]["loss"], history_resumed["epochs"][-1]["loss"], rtol=1e-5)
    for a, b in zip(jax.tree.leaves(full), jax.tree.leaves(resumed)):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="augmentation"):
        pretrain_simclr(model, data, config, None, progress=False)


@pytest.mark.slow
def test_simclr_run_end_to_end(tmp_path):
    config = SslConfig(
        dataset="synthetic2d",
        hidden=4,
        train_objects=40,
        val_objects=20,
        test_objects=20,
        inr_steps=20,
        pretrain_epochs=2,
        pretrain_batch_size=20,
        epochs=1,
        batch_size=20,
        label_fractions=(0.25, 1.0),
        augment="translate,gaussian_noise",
        cache_dir=str(tmp_path / "cache"),
        out=str(tmp_path / "run"),
        progress=False,
    )
    results = run_simclr(config)
    rows = results["fractions"]
    assert [r["fraction"] for r in rows] == [0.25, 1.0] and results["train_inrs"] == 40
    assert rows[0]["labelled_inrs"] == 10 and rows[0]["batch_size"] == 10
    assert all(
        0 <= r[f"{arm}_test_accuracy"] <= 1
        for r in rows
        for arm in ("scratch", "simclr", "random_probe", "simclr_probe")
    )
    run = tmp_path / "run"
    saved = json.loads((run / "results.json").read_text())
    assert len(saved["pretrain_history"]) == 2 and set(saved["histories"]) == {
        "scratch_f0.25",
        "simclr_f0.25",
        "scratch_f1",
        "simclr_f1",
    }
    assert (run / "table.md").read_text().startswith("| labelled")
    assert (run / "results.csv").read_text().startswith("fraction,")
    assert (run / "representations.png").stat().st_size > 0
    with pytest.raises(ValueError, match="--resume"):
        run_simclr(config)
    resumed = run_simclr(config.replace(resume=True))
    assert resumed["fractions"] == rows
    assert resumed["pretrain_final_loss"] == results["pretrain_final_loss"]
