"""The Quickstart job: PETS on Pendulum-v1 with a progress bar and a learning curve.

    python scripts/demo.py [--out runs/demo] [--iterations 10] [--seed 0] [--set field=value ...]

Compiles PETS' `init` and `step` once each, then runs one iteration (one 200-step
episode plus a model refit) per compiled call, printing progress and writing
`metrics.jsonl` and `learning_curve.png` into `--out`.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time

import jax
import numpy as np
from tqdm import tqdm

from jaxmbrl.algorithms import pets

def parse_overrides(pairs):
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"error: --set expects field=value, got {pair!r}")
        name, value = pair.split("=", 1)
        fields = {f.name: f for f in dataclasses.fields(pets.Config)}
        if name not in fields:
            raise SystemExit(f"error: unknown pets.Config field {name!r}; valid: {', '.join(fields)}")
        current = getattr(pets.Config(), name)
        if isinstance(current, tuple):
            out[name] = tuple(int(v) for v in value.split(","))
        elif isinstance(current, bool):
            out[name] = value.lower() in ("1", "true", "yes")
        else:
            out[name] = type(current)(value)
    return out


def plot(path, metrics, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(metrics["env_steps"], metrics["episode_return"], marker="o")
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="runs/demo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args(argv)

    config = pets.Config(**{"num_iterations": args.iterations, **parse_overrides(args.set)})
    try:
        train = pets.make_train(config)
    except ValueError as err:
        raise SystemExit(f"error: {err}")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(dataclasses.asdict(config), f, indent=2)

    t0 = time.perf_counter()
    init = jax.jit(train.init)
    step = jax.jit(train.step)
    state = jax.block_until_ready(init(jax.random.PRNGKey(args.seed), config.hparams()))
    rows = [jax.tree.map(lambda a: a[i].item(), state.warmup._asdict()) for i in range(config.random_iterations)]
    log = open(os.path.join(args.out, "metrics.jsonl"), "w")
    for row in rows:
        log.write(json.dumps(row) + "\n")
    bar = tqdm(total=config.num_iterations, initial=config.random_iterations, unit="episode",
               desc=f"PETS {config.env_id}", file=sys.stdout)
    bar.set_postfix(ret=f"{rows[-1]['episode_return']:.0f}")
    for _ in range(config.num_iterations - config.random_iterations):
        state, metrics = step(state)
        row = jax.tree.map(lambda a: a.item(), metrics._asdict())
        rows.append(row)
        log.write(json.dumps(row) + "\n")
        log.flush()
        bar.set_postfix(ret=f"{row['episode_return']:.0f}", model_mse=f"{row['model_holdout_mse']:.4f}")
        bar.update(1)
    bar.close()
    log.close()
    wall = time.perf_counter() - t0
    table = {k: [r[k] for r in rows] for k in rows[0]}
    png = os.path.join(args.out, "learning_curve.png")
    plot(png, table, f"PETS on {config.env_id} (seed {args.seed})")
    returns = [r for r in table["episode_return"] if not math.isnan(r)]
    print("episode returns:", ", ".join(f"{r:.0f}" for r in returns))
    print(f"last 5 mean: {np.mean(returns[-5:]):.1f}; wall time {wall:.0f} s (compile included)")
    print(f"wrote {png} and {os.path.join(args.out, 'metrics.jsonl')}")


if __name__ == "__main__":
    main()
