"""Sutton & Barto's Figure 8.2: tabular Dyna-Q on the Dyna Maze, n = 0, 5, 50 planning steps.

alpha 0.1, epsilon 0.1 (ties broken at random), gamma 0.95, zero initial values; every
(n, seed) pair is one lane of ONE vmapped program (n is a traced hyperparameter). As in
the book, each seed's random stream is shared by the three values of n, so the first
episode (a random walk: Q stays zero until the goal is reached) is the same for all n;
the plot shows episodes 2-50. Targets: with n = 50 the mean over seeds is at most 20
steps from episode 5 on; with n = 0 it stays above 20 until episode 10 or later.

    python scripts/dyna_maze.py [--seeds 30] [--episodes 50] [--png docs/dyna_maze.png]
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

import _common
from jaxmbrl.algorithms import dyna

PLANNING_STEPS = (0, 5, 50)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--steps", type=int, default=12_000, help="env steps per run (all runs must finish the episodes)")
    parser.add_argument("--png", default="")
    args = parser.parse_args()

    chunk = 1000
    config = dyna.Config(
        env_id="DynaMaze", mode="tabular", num_iterations=-(-args.steps // chunk), steps_per_iteration=chunk,
        max_planning_steps=max(PLANNING_STEPS), max_episodes=args.episodes,
    )
    train = dyna.make_train(config)
    lanes = len(PLANNING_STEPS) * args.seeds
    n = jnp.repeat(jnp.asarray(PLANNING_STEPS, jnp.float32), args.seeds)
    hp = jax.tree.map(lambda x: jnp.full((lanes,), x, jnp.float32), config.hparams())._replace(planning_steps=n)
    keys = jnp.tile(jax.random.split(jax.random.PRNGKey(args.seed), args.seeds), (len(PLANNING_STEPS), 1))

    start = time.perf_counter()
    state, _ = jax.block_until_ready(jax.jit(jax.vmap(train.run))(keys, hp))
    wall = time.perf_counter() - start

    count = np.asarray(state.episodes.count).reshape(len(PLANNING_STEPS), args.seeds)
    if (count < args.episodes).any():
        raise SystemExit(f"error: some runs finished only {count.min()} of {args.episodes} episodes in "
                         f"{config.num_iterations * chunk} steps; raise --steps.")
    lengths = np.asarray(state.episodes.lengths).reshape(len(PLANNING_STEPS), args.seeds, -1)
    mean = lengths.mean(1)  # [n, episodes]
    first_below_20 = {n: next((e + 1 for e in range(args.episodes) if mean[i, e] <= 20), None)
                      for i, n in enumerate(PLANNING_STEPS)}
    n50, n0 = PLANNING_STEPS.index(50), PLANNING_STEPS.index(0)
    result = {
        "machine": _common.machine(),
        "seeds": args.seeds,
        "hparams": {"alpha": 0.1, "epsilon": 0.1, "gamma": 0.95},
        "env_steps_per_run": config.num_iterations * chunk,
        "wall_s_including_compile": round(wall, 1),
        "first_episode_mean_steps_all_n": float(mean[0, 0]),
        "first_episode_identical_across_n": bool((lengths[:, :, 0] == lengths[0:1, :, 0]).all()),
        "mean_steps_per_episode": {f"n={n}": np.round(mean[i], 1).tolist() for i, n in enumerate(PLANNING_STEPS)},
        "first_episode_with_mean_at_most_20": {f"n={n}": e for n, e in first_below_20.items()},
        "target_n50_at_most_20_from_episode_5": bool((mean[n50, 4:] <= 20).all()),
        "target_n0_above_20_until_episode_10": bool((mean[n0, :9] > 20).all()),
    }
    # One line per entry keeps the 50-episode curves readable.
    print("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in result.items()) + "\n}")
    if args.png:
        plot(args.png, mean, args.seeds)


def plot(path, mean, seeds):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    episodes = np.arange(2, mean.shape[1] + 1)
    for i, n in enumerate(PLANNING_STEPS):
        label = f"{n} planning steps" + (" (direct RL only)" if n == 0 else "")
        ax.plot(episodes, mean[i, 1:], label=label)
    ax.axhline(14, color="k", ls=":", lw=1, label="shortest path (14)")
    ax.set_xlim(2, mean.shape[1])
    ax.set_ylim(0, 800)
    ax.set_xlabel("episodes")
    ax.set_ylabel("steps per episode")
    ax.set_title(f"Dyna-Q, Dyna Maze (Sutton & Barto Fig. 8.2): mean of {seeds} seeds", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
