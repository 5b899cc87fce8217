"""Dreamer on gymnax CartPole-v1: greedy evaluation return against env steps.

Seeds are one vmapped program, one compiled iteration per call (tqdm follows it).
Target: a mean evaluation return of at least 450 by 100,000 env steps.

    python scripts/dreamer_cartpole.py --seeds 3 --png docs/dreamer_cartpole.png
    python scripts/dreamer_cartpole.py --set controller=discrete_cem   # latent planning
"""
from __future__ import annotations

import argparse
import json

import numpy as np

from jaxmbrl.algorithms import dreamer

try:
    import _common
except ImportError:  # run from elsewhere
    from scripts import _common


def report(name, table, wall, compile_s, target=None):
    """Prints a markdown table of the evaluation curve; returns (steps, evals [seeds, iters])."""
    steps = table["env_steps"][0]
    evals = table["eval_return"]
    mean = evals.mean(0)
    print(f"\n## {name}: {evals.shape[0]} seeds, {wall:.0f} s wall, first iteration incl. compile {compile_s:.0f} s")
    print("| env steps | eval return mean | min | max | train episode return | model loss | kl |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for i, n in enumerate(steps):
        if np.isnan(mean[i]):
            continue
        print(f"| {n} | {mean[i]:.1f} | {evals[:, i].min():.1f} | {evals[:, i].max():.1f} | "
              f"{np.nanmean(table['episode_return'][:, i]):.1f} | {np.nanmean(table['model_loss'][:, i]):.3f} | "
              f"{np.nanmean(table['kl'][:, i]):.2f} |")
    if target is not None:
        hit = np.flatnonzero(np.nan_to_num(mean, nan=-np.inf) >= target)
        first = int(steps[hit[0]]) if hit.size else None
        print(f"first env steps with mean eval >= {target:g}: {first}")
    return steps, evals


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--env-steps", type=int, default=100_000, help="total env steps (rounded up to iterations)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="dreamer.Config overrides")
    parser.add_argument("--png", default="")
    parser.add_argument("--json", default="", help="write the curve here")
    args = parser.parse_args()
    print(f"machine: {_common.machine()}")
    cfg = dreamer.Config(env_id="CartPole-v1", **_common.parse_sets(args.set))
    per_iteration = cfg.steps_per_iteration * cfg.num_envs
    cfg = dreamer.Config(**{**cfg.__dict__, "num_iterations": -(-args.env_steps // per_iteration)})
    print(cfg)
    train = dreamer.make_train(cfg)
    table, wall, compile_s = _common.run_seeds(train, cfg, args.seeds, args.seed, desc="Dreamer CartPole-v1",
                                               postfix="eval_return")
    steps, evals = report(f"Dreamer ({cfg.controller}) CartPole-v1", table, wall, compile_s, target=450)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": steps.tolist(), "eval_return": evals.tolist(), "wall_s": wall}, f)
    if args.png:
        plot(args.png, {f"Dreamer ({cfg.controller})": (steps, evals)}, "Dreamer, CartPole-v1", target=450)


def plot(path, curves, title, target=None):
    """Mean and min-max band over seeds against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, (steps, values) in curves.items():
        keep = ~np.isnan(values).all(0)
        kept = values[:, keep]
        ax.plot(steps[keep], np.nanmean(kept, 0), label=label)
        ax.fill_between(steps[keep], np.nanmin(kept, 0), np.nanmax(kept, 0), alpha=0.2)
    if target is not None:
        ax.axhline(target, color="k", ls=":", lw=1)
    ax.set_xlabel("env steps")
    ax.set_ylabel("greedy evaluation return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
