"""Benchmark SIREN fitting throughput (and, with --psnr, the PSNR reached per step budget).

    python -m experiments.bench_fit                 # one JSON line
    python -m experiments.bench_fit --psnr 250,500,1000 --psnr-images 1024

The line gives ``inr_steps_per_s`` of :func:`dwsjax.fit.fit_sirens` (SIREN
2-32-32-1 on 28x28 images, or with ``--dataset modelnet10`` / ``modelnet40`` /
``synthetic3d`` the 3D preset on ``--points`` distance samples per shape; the
``--inr-recipe``'s init, offset and learning rate, all local devices; Adam steps
actually taken per second, early stopping off), the same figure for a
plain one-INR-at-a-time loop (a jitted ``jax.grad`` + optax step per INR and
step, ``jnp.sin``) measured in the same run, the achieved matmul GFLOP/s and a
float32 matmul peak measured here. Uses real Fashion-MNIST images when
``--data-dir``/``$DWSJAX_DATA_DIR`` has them, else the synthetic set. For shapes
the lines also give the 3D quality figures of :mod:`dwsjax.shape_quality`
(sign accuracy, near-surface error, median Chamfer distance) on held-out queries.
"""

from __future__ import annotations

import json
import time

from dwsjax.devices import use_all_cpu_cores
from dwsjax.recipes import DEFAULT_RECIPE, RECIPES, fit_recipe
from experiments.cli import make_parser, run_cli


def matmul_flops_per_step(widths: tuple[int, ...], pixels: int) -> int:
    """Matmul FLOPs of one Adam step: forward ``2 P d_in d_out`` per layer, backward
    ``2 P d_in d_out`` for every ``dW`` and for every ``dh`` except the first layer's."""
    layers = list(zip(widths[:-1], widths[1:]))
    forward = sum(2 * pixels * i * o for i, o in layers)
    return 2 * forward + sum(2 * pixels * i * o for i, o in layers[1:])


def main(argv=None) -> list[dict]:
    parser = make_parser(__doc__)
    parser.add_argument("--batch", type=int, default=512, help="INRs fitted in one call")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--chunk-size", type=int, default=8)
    parser.add_argument("--sequential-inrs", type=int, default=2)
    parser.add_argument("--psnr", default="", help="comma-separated step budgets for a PSNR table (default: none)")
    parser.add_argument("--psnr-images", type=int, default=1024)
    parser.add_argument("--early-stop", action="store_true", help="PSNR table: stop INRs at the recipe's target")
    parser.add_argument("--inr-recipe", default=DEFAULT_RECIPE, choices=sorted(RECIPES))
    parser.add_argument("--lr", type=float, default=None, help="Adam learning rate (default: the recipe's)")
    parser.add_argument("--data-dir", default=None, help="dataset root (default: $DWSJAX_DATA_DIR)")
    parser.add_argument(
        "--dataset",
        default="fmnist",
        choices=["fmnist", "modelnet10", "modelnet40", "synthetic3d"],
        help="fmnist (synthetic2d when absent) or a 3D dataset",
    )
    parser.add_argument("--points", type=int, default=1024, help="3D: distance samples per shape")
    args = parser.parse_args(argv)
    use_all_cpu_cores()

    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax

    import dwsjax as d
    from dwsjax.data import load_targets
    from dwsjax.fit import FitConfig, fit_sirens, inr_keys
    from dwsjax.presets import preset
    from dwsjax.shape_quality import shape_quality

    n = max(args.batch, args.psnr_images if args.psnr else 0)
    kind = preset(args.dataset).kind
    spec = preset(args.dataset).spec
    if kind == "shape":
        targets, source = (
            load_targets(args.dataset, "train", args.data_dir, limit=n, n=n, n_points=args.points),
            args.dataset,
        )
    else:
        try:
            targets, source = load_targets("fmnist", "train", args.data_dir, limit=n), "fmnist"
        except FileNotFoundError:
            targets, source = load_targets("synthetic2d", "train", limit=n, n=n), "synthetic2d"
    coords, values = jnp.asarray(targets.coords), jnp.asarray(targets.values)
    n = min(n, len(values))

    def coords_of(rows):
        return coords if coords.ndim == 2 else coords[rows]

    def quality(weights, rows) -> dict:
        """3D quality figures of fitted shapes (empty for images)."""
        if targets.surface is None:
            return {}
        q = shape_quality(
            weights,
            targets.holdout_coords[rows],
            targets.holdout_values[rows],
            targets.surface[rows],
            targets.kind == "sdf",
            config.output_offset,
        )
        return {
            "sign_accuracy": round(float(np.nanmean(q["sign_accuracy"])), 4) if targets.kind == "sdf" else None,
            "near_error": round(float(np.nanmean(q["near_error"])), 5),
            "median_chamfer": round(float(np.median(q["chamfer"])), 5),
        }

    def timed(fn):
        start = time.perf_counter()
        out = jax.block_until_ready(fn())
        return time.perf_counter() - start, out

    recipe = fit_recipe(args.inr_recipe, kind)
    throughput = recipe._replace(steps=args.steps, target_psnr=None, learning_rate=args.lr or recipe.learning_rate)
    config = FitConfig.from_recipe(spec, throughput, preset(args.dataset).data_range, chunk_size=args.chunk_size)
    batch = min(args.batch, len(values))
    keys = inr_keys(0, np.arange(batch), np.zeros(batch, int))
    rows = np.arange(batch)
    timed(lambda: fit_sirens(keys, coords_of(rows), values[rows], config))
    fit_seconds, fitted = timed(lambda: fit_sirens(keys, coords_of(rows), values[rows], config))
    rate = int(np.asarray(fitted.steps).sum()) / fit_seconds

    optimizer = optax.adam(config.learning_rate)

    @jax.jit
    def sequential_step(ws, opt_state, x, target):
        loss = lambda w: jnp.mean((d.siren_apply(w, x, output_offset=config.output_offset) - target) ** 2)  # noqa: E731
        grads = jax.grad(loss)(ws)
        updates, opt_state = optimizer.update(grads, opt_state, ws)
        return optax.apply_updates(ws, updates), opt_state

    def sequential_loop(count, steps):
        for i in range(count):
            ws = d.siren_init(jax.random.key(i), spec, scheme=config.init_scheme)
            opt_state = optimizer.init(ws)
            for _ in range(steps):
                ws, opt_state = sequential_step(ws, opt_state, coords_of(i), values[i])
        return ws

    timed(lambda: sequential_loop(1, 2))
    seq_steps = max(50, args.steps // 2)
    seq_seconds, _ = timed(lambda: sequential_loop(args.sequential_inrs, seq_steps))
    sequential_rate = args.sequential_inrs * seq_steps / seq_seconds

    size = 2048
    a = jax.random.normal(jax.random.key(0), (size, size))
    matmul = jax.jit(lambda x: x @ x)
    timed(lambda: matmul(a))
    peak = 2 * size**3 * 5 / timed(lambda: [matmul(a) for _ in range(5)])[0] / 1e9
    flops = matmul_flops_per_step(spec.widths, coords.shape[-2])
    lines = [
        {
            "benchmark": "fit_sirens",
            "recipe": args.inr_recipe,
            "lr": config.learning_rate,
            "spec": str(spec),
            "samples": "28x28" if kind == "image" else f"{coords.shape[-2]} points",
            "data": source,
            "devices": len(jax.local_devices()),
            "batch": batch,
            "chunk_size": args.chunk_size,
            "steps": args.steps,
            "inr_steps_per_s": round(rate, 1),
            "sequential_inr_steps_per_s": round(sequential_rate, 1),
            "speedup_vs_sequential": round(rate / sequential_rate, 2),
            "mean_psnr": round(float(fitted.psnr.mean()), 2),
            **quality(fitted.weights, rows),
            "matmul_gflops_achieved": round(flops * rate / 1e9, 2),
            "matmul_peak_gflops": round(peak, 2),
            "matmul_bound_inr_steps_per_s": round(peak * 1e9 / flops, 1),
        }
    ]
    print(json.dumps(lines[0]), flush=True)

    for budget in [int(s) for s in args.psnr.split(",") if s]:
        m = min(args.psnr_images, len(values))
        cfg = config._replace(steps=budget, target_psnr=recipe.target_psnr if args.early_stop else None)
        start = time.perf_counter()
        result = fit_sirens(inr_keys(0, np.arange(m), np.zeros(m, int)), coords_of(np.arange(m)), values[:m], cfg)
        psnr = np.asarray(result.psnr)
        lines.append(
            {
                "benchmark": "fit_psnr",
                "recipe": args.inr_recipe,
                "data": source,
                "images": m,
                "steps": budget,
                "lr": cfg.learning_rate,
                "target_psnr": cfg.target_psnr,
                "mean_inr_steps": round(float(np.asarray(result.steps).mean()), 1),
                "mean_psnr": round(float(psnr.mean()), 2),
                "min_psnr": round(float(psnr.min()), 2),
                "seconds": round(time.perf_counter() - start, 1),
                **quality(result.weights, np.arange(m)),
            }
        )
        print(json.dumps(lines[-1]), flush=True)
    return lines


if __name__ == "__main__":
    run_cli(main)
