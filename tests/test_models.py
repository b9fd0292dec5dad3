"""Symmetry, training and shape tests for dwsjax.models."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dwsjax import WeightSpace, mlp_spec, normalize, siren_init_batch, weight_stats
from dwsjax.models import (
    DWSLayer,
    DWSWeightModel,
    build_model,
    from_tensors,
    model_param_counts,
    neural_graph,
    param_count,
    summary,
    to_tensors,
)
from dwsjax.models.graph import num_positions
from dwsjax.models.symmetry import fold, unfold, weight_space_slots

SPECS = [mlp_spec(2, 5, 4, 1), mlp_spec(3, 8, 8, 8, 1)]
SMALL = {
    "dws": dict(hidden=8, depth=2, head_hidden=16),
    "gnn": dict(
        node_dim=16,
        edge_dim=8,
        attn_dim=16,
        node_hidden=16,
        edge_hidden=16,
        head_hidden=16,
        depth=2,
        heads=2,
        num_frequencies=8,
    ),
    "mlp": dict(hidden=(32, 32)),
    "transformer": dict(dim=16, depth=2, heads=2),
}


def random_perms(seed, spec):
    rng = np.random.default_rng(seed)
    return [rng.permutation(d) for d in spec.hidden_widths]


def permute_hidden(ws: WeightSpace, perms) -> WeightSpace:
    """Permute hidden neurons; leaves are ``(B, d_in, d_out, ...)`` / ``(B, d_out, ...)``."""
    weights, biases = [np.asarray(w) for w in ws.weights], [np.asarray(b) for b in ws.biases]
    for k, p in enumerate(perms, start=1):
        weights[k - 1] = np.take(weights[k - 1], p, axis=2)
        biases[k - 1] = np.take(biases[k - 1], p, axis=1)
        weights[k] = np.take(weights[k], p, axis=1)
    return WeightSpace(tuple(weights), tuple(biases))


def random_ws(seed, spec, batch=3, channels=None):
    """Gaussian weight space (numpy, so no per-op compilation in eager mode)."""
    extra = () if channels is None else (channels,)
    rng = np.random.default_rng(seed)

    def normal(shape):
        return rng.standard_normal(shape).astype(np.float32)

    weights = tuple(normal((batch, i, o) + extra) for i, o in spec.layer_shapes)
    biases = tuple(normal((batch, o) + extra) for _, o in spec.layer_shapes)
    return WeightSpace(weights, biases)


def assert_ws_close(a: WeightSpace, b: WeightSpace):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_fold_unfold_roundtrip(spec):
    ws = random_ws(0, spec, channels=2)
    roundtrip = jax.jit(lambda x, slot: unfold(fold(x, slot), slot), static_argnums=1)
    for x, slot in zip(ws.weights + ws.biases, weight_space_slots(spec)):
        np.testing.assert_array_equal(roundtrip(x, slot), x)


@pytest.mark.parametrize(
    "reduction,set_layer", [("sum", "linear"), ("mean", "linear"), ("max", "linear"), ("max", "sab")]
)
@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_dws_layer_is_equivariant(spec, reduction, set_layer):
    ws = random_ws(1, spec, channels=3)
    layer = DWSLayer(spec, out_channels=4, reduction=reduction, set_layer=set_layer, heads=2)
    tensors = ws.weights + ws.biases
    params = jax.jit(layer.init)(jax.random.key(2), tensors)
    apply = jax.jit(lambda w: _as_ws(layer.apply(params, w.weights + w.biases)))
    perms = random_perms(3, spec)
    assert_ws_close(apply(permute_hidden(ws, perms)), permute_hidden(apply(ws), perms))
    out = apply(ws)
    assert out.weights[0].shape == ws.weights[0].shape[:-1] + (4,)


def _as_ws(tensors):
    half = len(tensors) // 2
    return WeightSpace(tuple(tensors[:half]), tuple(tensors[half:]))


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_dws_weight_model_is_equivariant(spec):
    ws = random_ws(4, spec)
    model = DWSWeightModel(spec, hidden=8, depth=2, normalization="layer")
    params = jax.jit(model.init)(jax.random.key(5), ws)
    apply = jax.jit(model.apply)
    perms = random_perms(6, spec)
    out = apply(params, ws)
    assert jax.tree.map(jnp.shape, out) == jax.tree.map(jnp.shape, ws)
    assert_ws_close(apply(params, permute_hidden(ws, perms)), permute_hidden(out, perms))


def test_to_from_tensors_roundtrip():
    ws = random_ws(7, SPECS[0])
    assert_ws_close(from_tensors(to_tensors(ws)), ws)


@pytest.mark.parametrize("name", ["dws", "gnn"])
@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_classifier_is_invariant(name, spec):
    ws = random_ws(8, spec)
    model = build_model(name, spec, 5, **SMALL[name])
    params = jax.jit(model.init)(jax.random.key(9), ws)
    apply = jax.jit(model.apply)
    logits = apply(params, ws)
    assert logits.shape == (3, 5)
    for seed in range(2):
        permuted = permute_hidden(ws, random_perms(10 + seed, spec))
        np.testing.assert_allclose(apply(params, permuted), logits, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["mlp", "transformer"])
def test_baselines_are_not_invariant(name):
    spec = SPECS[1]
    ws = random_ws(11, spec)
    model = build_model(name, spec, 5, **SMALL[name])
    params = jax.jit(model.init)(jax.random.key(12), ws)
    apply = jax.jit(model.apply)
    permuted = permute_hidden(ws, random_perms(13, spec))
    gap = jnp.max(jnp.abs(apply(params, permuted) - apply(params, ws)))
    assert gap > 1e-3


def test_neural_graph_places_weights_on_edges():
    spec = SPECS[0]
    ws = random_ws(14, spec)
    graph = neural_graph(ws, spec)
    n = sum(spec.widths)
    assert graph.edge_weight.shape == (3, n, n) and graph.node_bias.shape == (3, n)
    np.testing.assert_array_equal(graph.edge_weight[:, :2, 2:7], ws.weights[0])
    np.testing.assert_array_equal(graph.edge_weight[:, 2:7, 7:11], ws.weights[1])
    np.testing.assert_array_equal(graph.edge_weight[:, 7:11, 11:], ws.weights[2])
    assert int((np.asarray(graph.edge_weight) != 0).sum()) == 3 * (2 * 5 + 5 * 4 + 4 * 1)
    np.testing.assert_array_equal(graph.node_bias[:, :2], 0.0)
    np.testing.assert_array_equal(graph.node_bias[:, 2:7], ws.biases[0])
    np.testing.assert_array_equal(graph.node_bias[:, -1], ws.biases[-1][:, 0])
    assert len(set(graph.node_position[2:7].tolist())) == 1
    assert len(set(graph.node_position.tolist())) == num_positions(spec)


def test_relational_transformer_is_invariant_on_fitted_inrs():
    """Hidden-neuron permutations of real (fitted) SIRENs leave the reference RT's logits unchanged."""
    from dwsjax.data import load_targets
    from dwsjax.fit import FitConfig, fit_sirens, inr_keys

    spec = mlp_spec(2, 8, 8, 1)
    t = load_targets("synthetic2d", "train", limit=3)
    fitted = fit_sirens(
        inr_keys(0, t.object_ids, np.zeros(3, int)),
        jnp.asarray(t.coords),
        jnp.asarray(t.values),
        FitConfig(spec, steps=50),
    ).weights
    ws = normalize(fitted, weight_stats(fitted))
    model = build_model("gnn", spec, 5, **SMALL["gnn"])
    params = jax.jit(model.init)(jax.random.key(9), ws)
    logits = jax.jit(model.apply)(params, ws)
    assert np.abs(np.asarray(logits)).max() > 1e-3
    for seed in range(3):
        permuted = permute_hidden(ws, random_perms(20 + seed, spec))
        np.testing.assert_allclose(jax.jit(model.apply)(params, permuted), logits, rtol=1e-4, atol=1e-5)


def test_relational_transformer_attends_to_all_node_pairs():
    """Changing the bias of the one input-side node that no weight links to the output node still
    changes the output node's features: attention is over all pairs, not graph neighbours."""
    spec = mlp_spec(2, 4, 4, 1)
    ws = random_ws(21, spec, batch=1)
    model = build_model("gnn", spec, 3, **{**SMALL["gnn"], "depth": 1})
    params = jax.jit(model.init)(jax.random.key(0), ws)
    moved = WeightSpace(ws.weights, (ws.biases[0] + 1.0,) + ws.biases[1:])
    assert np.abs(np.asarray(model.apply(params, moved) - model.apply(params, ws))).max() > 1e-4


def test_relational_attention_matches_the_per_pair_formula():
    """The attention equals the reference's formula written pair by pair: q_ij = Q x_i + Q_e e_ij,
    k_ij = K x_j + K_e e_ij, v_ij = (V x_j) * (M_e e_ij) + V_e e_ij, softmax over j per head."""
    from dwsjax.models.gnn import RelationalAttention

    batch, nodes, node_dim, edge_dim, attn_dim, heads = 2, 5, 6, 4, 8, 2
    head = attn_dim // heads
    x = jax.random.normal(jax.random.key(0), (batch, nodes, node_dim))
    e = jax.random.normal(jax.random.key(1), (batch, nodes, nodes, edge_dim))
    module = RelationalAttention(attn_dim, heads)
    params = module.init(jax.random.key(2), x, e)["params"]
    qkv = np.asarray(x @ params["qkv_node"]["kernel"]).reshape(batch, nodes, heads, 3, head)
    edge = np.asarray(e @ params["qkv_edge"]).reshape(batch, nodes, nodes, heads, 4, head)
    out = np.zeros((batch, nodes, heads, head))
    for b, i, h in np.ndindex(batch, nodes, heads):
        q = qkv[b, i, h, 0] + edge[b, i, :, h, 0]
        k = qkv[b, :, h, 1] + edge[b, i, :, h, 1]
        v = qkv[b, :, h, 2] * edge[b, i, :, h, 3] + edge[b, i, :, h, 2]
        logits = np.sum(q * k, axis=-1) / np.sqrt(attn_dim)
        weights = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
        out[b, i, h] = weights @ v
    expected = out.reshape(batch, nodes, attn_dim) @ params["out"]["kernel"] + params["out"]["bias"]
    np.testing.assert_allclose(module.apply({"params": params}, x, e), expected, rtol=1e-5, atol=1e-5)


def siren_dataset(spec, n=8, classes=4):
    """Random SIREN initialisations (real INR weights, untrained) with random labels, normalised per layer."""

    @jax.jit
    def make(key):
        ws = siren_init_batch(jax.random.split(key, n), spec)
        return normalize(ws, weight_stats(ws))

    return make(jax.random.key(15)), np.random.default_rng(16).integers(0, classes, n)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dws", "gnn", "mlp", "transformer"])
def test_model_jits_and_overfits_sirens(name):
    spec = mlp_spec(2, 16, 16, 1)
    ws, labels = siren_dataset(spec)
    model = build_model(name, spec, 4, dropout=0.1, **SMALL[name])
    variables = jax.jit(model.init)(jax.random.key(17), ws)
    params = variables["params"]
    opt = optax.adamw(3e-3, weight_decay=5e-4)
    state = opt.init(params)

    @jax.jit
    def step(params, state, key):
        def loss_fn(p):  # BatchNorm (DWS) uses batch statistics; their running averages are not needed here
            logits, _ = model.apply(
                {**variables, "params": p}, ws, train=True, rngs={"dropout": key}, mutable=["batch_stats"]
            )
            return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    for key in jax.random.split(jax.random.key(18), 80):
        params, state, loss = step(params, state, key)
        losses.append(float(loss))
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.3 * losses[0], losses[::10]


@pytest.mark.parametrize("name", ["dws", "gnn", "mlp", "transformer"])
def test_wrong_architecture_raises(name):
    model = build_model(name, mlp_spec(2, 8, 8, 1), 3, **SMALL[name])
    with pytest.raises(ValueError, match="expects weight spaces of architecture 2-8-8-1"):
        model.init(jax.random.key(0), random_ws(1, mlp_spec(2, 8, 4, 1)))
    with pytest.raises(ValueError, match="one batch axis"):
        two_batch_axes = jax.tree.map(lambda x: x[None], random_ws(1, model.spec))
        model.init(jax.random.key(0), two_batch_axes)


def test_build_model_rejects_unknown_name():
    with pytest.raises(ValueError, match="unknown model"):
        build_model("resnet", mlp_spec(2, 8, 1), 3)


def test_summary_counts_match_init():
    model = build_model("dws", mlp_spec(2, 8, 8, 1), 3, **SMALL["dws"])
    variables = jax.jit(model.init)(jax.random.key(0), random_ws(1, model.spec))
    assert model_param_counts(model)["total"] == param_count(variables["params"])  # not BatchNorm's statistics
    assert "total" in summary(model)


@pytest.mark.parametrize(
    "name, field, value",
    [("dws", "hidden", 12), ("gnn", "node_dim", 12), ("mlp", "hidden", (12, 12, 12)), ("transformer", "dim", 12)],
)
def test_width_config_sets_each_models_width(name, field, value):
    from dwsjax.models import width_config

    assert width_config(name, None) == {}
    assert getattr(build_model(name, mlp_spec(2, 8, 8, 1), 3, **width_config(name, 12)), field) == value


def test_depth_config_sets_layers_and_refuses_the_flat_mlp():
    from dwsjax.models import depth_config

    assert depth_config("dws", None) == {}
    assert build_model("dws", mlp_spec(2, 8, 8, 1), 3, **depth_config("dws", 5)).depth == 5
    with pytest.raises(ValueError, match="flat MLP has no --depth"):
        depth_config("mlp", 3)
    with pytest.raises(ValueError, match="depth must be >= 1"):
        depth_config("gnn", 0)


def test_max_pool_propagates_a_nan_that_xla_drops():
    from dwsjax.models.symmetry import max_pool

    x = jnp.ones((2, 32, 32, 4)).at[0, 3, 3, 1].set(jnp.nan)
    pooled = np.asarray(max_pool(x, (1, 2)))
    assert np.isnan(pooled[0, 1]) and np.isfinite(np.delete(pooled.ravel(), 1)).all()


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("leaf", ["W0", "W1", "b1"])
def test_one_nan_weight_gives_nan_logits_for_that_inr_only(name, leaf):
    spec = SPECS[0]
    ws = random_ws(0, spec)
    poisoned = [list(ws.weights), list(ws.biases)]
    kind, layer = (0 if leaf[0] == "W" else 1), int(leaf[1])
    poisoned[kind][layer] = poisoned[kind][layer].copy()
    poisoned[kind][layer][1].flat[2] = np.nan
    model = build_model(name, spec, 3, **SMALL[name])
    params = model.init(jax.random.key(0), ws)
    clean = np.asarray(model.apply(params, ws))
    logits = np.asarray(model.apply(params, WeightSpace(tuple(poisoned[0]), tuple(poisoned[1]))))
    assert np.isnan(logits[1]).all()
    np.testing.assert_allclose(logits[[0, 2]], clean[[0, 2]], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("set_layer", ["linear", "sab"])
@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_batchnorm_classifier_is_invariant_in_train_and_eval_mode(spec, set_layer):
    """BatchNorm (statistics over batch and all positions of a slot) keeps the DWS classifier
    invariant: in training mode (batch statistics) and in evaluation mode (running averages,
    here moved away from their initial values by one training-mode pass)."""
    ws = random_ws(15, spec, batch=4)
    model = build_model("dws", spec, 5, **SMALL["dws"], normalization="batch", set_layer=set_layer, heads=4)
    variables = jax.jit(model.init)(jax.random.key(16), ws)
    train = jax.jit(lambda v, w: model.apply(v, w, train=True, mutable=["batch_stats"]))
    logits, updates = train(variables, ws)
    moved = jax.tree.map(lambda a, b: np.abs(a - b).max(), updates["batch_stats"], variables["batch_stats"])
    assert max(jax.tree.leaves(moved)) > 1e-3
    variables = {**variables, **updates}
    evaluate = jax.jit(model.apply)
    eval_logits = evaluate(variables, ws)
    for seed in range(2):
        permuted = permute_hidden(ws, random_perms(17 + seed, spec))
        np.testing.assert_allclose(train(variables, permuted)[0], logits, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(evaluate(variables, permuted), eval_logits, rtol=1e-4, atol=1e-4)


def test_linear_head_has_no_hidden_head_layer():
    """``head_hidden=0``: the invariant features go through one linear map (the reference readout)."""
    spec = SPECS[0]
    model = build_model("dws", spec, 5, hidden=8, depth=2, head_hidden=0)
    counts = model_param_counts(model)
    assert "head_hidden" not in counts and counts["head_out"] > 0
