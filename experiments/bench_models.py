"""Training-step throughput of the weight-space models.

``python -m experiments.bench_models [--batch 128] [--steps 20] [--models dws32,dws32-probe] [--spec 3-32-32-32-32-1]``
prints one JSON line per model: samples/s of a jitted AdamW step (lr 1e-3,
weight decay 5e-4, Shamsian et al. 2024 App. D) on random SIREN weight spaces of
``--spec`` (default 2-32-32-1) with random labels, normalised as in training
(``-probe`` models also read the raw weights), measured after a warm-up step with
``block_until_ready``, plus the parameter count, the model config and the
step's FLOPs per sample as XLA counts them (``gflop_per_sample``; throughput
times it is the arithmetic rate the step achieves).
"""

from __future__ import annotations

import dataclasses
import json
import time

import jax
import optax

from dwsjax import mlp_spec, siren_init_batch, weight_stats
from dwsjax.models import build_model, param_count
from dwsjax.models.probes import ProbeConfig, raw_kwargs, reads_raw_weights
from dwsjax.plan import step_flops
from dwsjax.train import TrainState, apply_train, model_inputs
from experiments.cli import make_parser, run_cli

CONFIGS = {
    "dws32": ("dws", {"hidden": 32}),
    "dws32-linear": ("dws", {"hidden": 32, "normalization": "none", "set_layer": "linear"}),
    "dws32-probe": ("dws", {"hidden": 32, "probe": ProbeConfig(64)}),
    "dws128": ("dws", {"hidden": 128}),
    "gnn": ("gnn", {}),
    "gnn-probe": ("gnn", {"probe": ProbeConfig(64)}),
    "mlp": ("mlp", {}),
    "transformer": ("transformer", {}),
}
NUM_CLASSES = 10


def make_train_step():
    """Jitted ``(state, ws, labels, key) -> (state, loss)``: one AdamW step in training mode
    (BatchNorm statistics updated, as :func:`dwsjax.train.apply_train` does for training)."""

    def loss_fn(params, state, ws, labels, key):
        logits, batch_stats = apply_train(state, params, model_inputs(state, ws, weight_stats(ws)), key)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean(), batch_stats

    @jax.jit
    def step(state, ws, labels, key):
        (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state, ws, labels, key)
        return state.apply_gradients(grads=grads).replace(batch_stats=batch_stats), loss

    return step


def benchmark(name: str, batch: int, steps: int, widths: tuple[int, ...] = (2, 32, 32, 1)) -> dict:
    kind, config = CONFIGS[name]
    spec = mlp_spec(*widths)
    model = build_model(kind, spec, NUM_CLASSES, **config)
    ws = jax.jit(lambda k: siren_init_batch(jax.random.split(k, batch), spec))(jax.random.key(0))
    labels = jax.random.randint(jax.random.key(1), (batch,), 0, NUM_CLASSES)
    variables = jax.jit(lambda k: model.init(k, ws, **raw_kwargs(model, ws)))(jax.random.key(2))
    key = jax.random.key(3)
    state = TrainState.create(
        apply_fn=model.apply,
        params=variables["params"],
        tx=optax.adamw(1e-3, weight_decay=5e-4),
        dropout_key=key,
        batch_stats=variables.get("batch_stats", {}),
        reads_raw_weights=reads_raw_weights(model),
    )
    step = make_train_step()
    flops = step_flops(step, state, ws, labels, key)
    jax.block_until_ready(step(state, ws, labels, key))
    start = time.perf_counter()
    for _ in range(steps):
        state, loss = step(state, ws, labels, key)
    jax.block_until_ready(loss)
    seconds = time.perf_counter() - start
    return {
        "model": name,
        "samples_per_s": round(batch * steps / seconds, 1),
        "params": param_count(state.params),
        "gflop_per_sample": round(flops / batch / 1e9, 3),
        "config": {
            f.name: getattr(model, f.name)
            for f in dataclasses.fields(model)
            if f.name not in ("parent", "name", "spec", "num_classes")
        },
        "spec": str(spec),
        "batch": batch,
        "steps": steps,
    }


def main(argv=None) -> None:
    parser = make_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--models", default=",".join(CONFIGS), help=f"comma-separated subset of {list(CONFIGS)}")
    parser.add_argument("--spec", default="2-32-32-1", help="SIREN widths, e.g. 3-32-32-32-32-1 (the 3D preset)")
    args = parser.parse_args(argv)
    widths = tuple(int(w) for w in args.spec.split("-"))
    for name in args.models.split(","):
        if name not in CONFIGS:
            parser.error(f"unknown model {name!r}; choose from {list(CONFIGS)}")
        print(json.dumps(benchmark(name, args.batch, args.steps, widths), default=str), flush=True)


if __name__ == "__main__":
    run_cli(main)
