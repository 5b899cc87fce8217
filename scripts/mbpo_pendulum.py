"""MBPO vs SAC on gymnax Pendulum-v1: greedy evaluation return against real env steps.

Both run as one compiled, seed-vmapped `mbpo.make_train(...).run`. MBPO uses mbrl-lib
0.2.0's Pendulum settings (7/5 ensemble, k = 1, 400 rollouts and 20 SAC updates per env
step, 1,000 random exploration steps, model refit every 200 steps). SAC is the same
program with `real_ratio = 1` (every SAC batch is real data: the model is never read, so
it is shrunk to a token size) and SAC's usual one update per env step; same networks,
same exploration. Reference (mbrl-lib MBPO): -121 / -128 / -119 after 3k / 4k / 5k steps.

    python scripts/mbpo_pendulum.py --seeds 5 --iterations 20
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from jaxmbrl.algorithms import mbpo

try:
    from _common import machine, parse_sets
except ImportError:  # run from elsewhere
    from scripts._common import machine, parse_sets

TARGET = -200.0


def run(name, cfg, hp, seeds, seed):
    train = mbpo.make_train(cfg)
    batched = jax.tree.map(lambda h: jnp.full((seeds,), h, jnp.float32), hp)
    keys = jax.random.split(jax.random.PRNGKey(seed), seeds)
    start = time.perf_counter()
    _, metrics = jax.block_until_ready(jax.jit(jax.vmap(train.run))(keys, batched))
    seconds = time.perf_counter() - start
    steps = np.asarray(metrics.env_steps[0])
    evals = np.asarray(metrics.eval_return)  # [seeds, iterations]
    mean = evals.mean(0)
    reached = np.flatnonzero(np.nan_to_num(mean, nan=-np.inf) >= TARGET)
    first = int(steps[reached[0]]) if reached.size else None
    per_seed = []
    for s in range(seeds):
        hit = np.flatnonzero(np.nan_to_num(evals[s], nan=-np.inf) >= TARGET)
        per_seed.append(int(steps[hit[0]]) if hit.size else None)
    print(f"\n## {name}: {seeds} seeds, {seconds:.0f} s wall (compile included)")
    print("| env steps | eval return mean | min | max |")
    print("|---:|---:|---:|---:|")
    for i, n in enumerate(steps):
        if np.isnan(mean[i]):
            continue
        print(f"| {n} | {mean[i]:.1f} | {evals[:, i].min():.1f} | {evals[:, i].max():.1f} |")
    print(f"first env steps with mean eval >= {TARGET:.0f}: {first}; per seed: {per_seed}")
    return steps, evals


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--iterations", type=int, default=20, help="200-step iterations, exploration included")
    parser.add_argument("--only", choices=("mbpo", "sac", "both"), default="both")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="mbpo.Config overrides")
    parser.add_argument("--png", default="")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    overrides = parse_sets(args.set)
    base = dict(num_iterations=args.iterations, **overrides)
    curves = {}
    if args.only in ("mbpo", "both"):
        cfg = mbpo.Config(**base)
        curves["MBPO"] = run("MBPO", cfg, cfg.hparams(), args.seeds, args.seed)
    if args.only in ("sac", "both"):
        sac_base = dict(base, policy_updates_per_step=1, rollouts_per_step=1, num_members=1, num_model_elites=1,
                        model_hidden_sizes=(8,), model_epochs=1)
        cfg = mbpo.Config(**sac_base)
        curves["SAC"] = run("SAC", cfg, cfg.hparams()._replace(real_ratio=1.0), args.seeds, args.seed)
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        for name, (steps, evals) in curves.items():
            m = evals.mean(0)
            ax.plot(steps, m, label=name)
            ax.fill_between(steps, evals.min(0), evals.max(0), alpha=0.2)
        ax.axhline(TARGET, color="k", ls=":", lw=1)
        ax.set_xlabel("real env steps")
        ax.set_ylabel("greedy evaluation return")
        ax.set_title("Pendulum-v1")
        ax.legend()
        fig.tight_layout()
        fig.savefig(args.png, dpi=120)


if __name__ == "__main__":
    main()
