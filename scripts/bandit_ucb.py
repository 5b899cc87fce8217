"""Sutton & Barto's Figure 2.4: UCB (c = 2) vs epsilon-greedy (epsilon = 0.1) on the 10-armed testbed.

Each run draws q*(a) ~ N(0, 1) for 10 arms; rewards are N(q*(a), 1); both learners keep
sample averages from Q = 0. Runs are a `lax.scan` over rounds vmapped over runs, and
both methods' runs are ONE jitted program. Target (the book's figure): UCB's average
reward over the last 100 of 1,000 rounds beats epsilon-greedy's (about 1.5 vs 1.35),
with UCB's spike at round 11, when every arm has been tried once and the best estimate
is pulled.

    python scripts/bandit_ucb.py [--runs 2000] [--steps 1000] [--png docs/bandit_ucb.png]
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import numpy as np

import _common
from jaxmbrl import exploration


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--arms", type=int, default=10)
    parser.add_argument("--epsilon", type=float, default=0.1)
    parser.add_argument("--c", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--png", default="")
    parser.add_argument("--json", default="", help="write the result here too")
    args = parser.parse_args()

    def both(key):
        k_eps, k_ucb = jax.random.split(key)
        sizes = dict(num_arms=args.arms, num_steps=args.steps)
        return (exploration.run_testbed(k_eps, "epsilon_greedy", args.runs, epsilon=args.epsilon, **sizes),
                exploration.run_testbed(k_ucb, "ucb", args.runs, c=args.c, **sizes))

    fn = jax.jit(both)
    key = jax.random.PRNGKey(args.seed)
    start = time.perf_counter()
    eps, ucb = jax.block_until_ready(fn(key))
    first = time.perf_counter() - start
    start = time.perf_counter()
    jax.block_until_ready(fn(key))
    again = time.perf_counter() - start

    last = min(100, args.steps)
    curves = {f"epsilon-greedy eps={args.epsilon:g}": np.asarray(eps.rewards).mean(0),
              f"UCB c={args.c:g}": np.asarray(ucb.rewards).mean(0)}
    result = {
        "machine": _common.machine(),
        "runs": args.runs, "steps": args.steps, "arms": args.arms,
        "wall_s_including_compile": round(first, 2),
        "wall_s_compiled": round(again, 3),
        f"mean_reward_last_{last}": {
            "epsilon_greedy": round(float(np.asarray(eps.rewards)[:, -last:].mean()), 3),
            "ucb": round(float(np.asarray(ucb.rewards)[:, -last:].mean()), 3),
        },
        f"optimal_action_last_{last}": {
            "epsilon_greedy": round(float(np.asarray(eps.optimal)[:, -last:].mean()), 3),
            "ucb": round(float(np.asarray(ucb.optimal)[:, -last:].mean()), 3),
        },
        "ucb_round_11_spike": round(float(curves[f"UCB c={args.c:g}"][10]), 3) if args.steps > 10 else None,
    }
    result["target_ucb_beats_epsilon_greedy"] = (result[f"mean_reward_last_{last}"]["ucb"]
                                                 > result[f"mean_reward_last_{last}"]["epsilon_greedy"])
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.png:
        plot(args.png, curves, args.runs)


def plot(path, curves, runs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for label, mean in curves.items():
        ax.plot(np.arange(1, len(mean) + 1), mean, label=label, lw=1)
    ax.set_xlim(1, len(mean))
    ax.set_xlabel("steps")
    ax.set_ylabel("average reward")
    ax.set_title(f"10-armed testbed (Sutton & Barto Fig. 2.4): mean of {runs} runs", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
