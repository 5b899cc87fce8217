"""Deep Dyna-Q against DQN on gymnax CartPole-v1 (or Acrobot-v1): env steps to solve.

Both runs use the same Q-network, optimiser, exploration schedule and env-step budget;
deep Dyna-Q adds `--planning-steps` Q updates per env step on one-step synthetic
transitions from a Gaussian ensemble (learned dynamics and reward) refit every
`model_train_every` steps (`max_planning_steps=0` is DQN). Synthetic terminations come from
the ensemble's learned termination head by default (trained with class-balanced
weights, see docs/BENCHMARKS.md); `--termination known` applies the env's known
termination function to the predicted next observation instead. Each algorithm runs `--seeds` seeds vmapped in one program, one compiled
iteration (`--eval-every` env steps, then `num_eval_episodes` greedy episodes) per call, and
stops early once every seed has reached the threshold. Reported: env steps until the
greedy evaluation return first reaches the threshold (475 for CartPole-v1, -100 for
Acrobot-v1); the target is a Dyna-Q median of at most two thirds of DQN's.

    python scripts/dyna_cartpole.py [--env CartPole-v1] [--seeds 5] [--steps 50000]
        [--planning-steps 4] [--only dyna|dqn] [--termination known|learned]
        [--set field=value ...] [--png PATH]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

import _common
from jaxmbrl.algorithms import dyna

THRESHOLDS = {"CartPole-v1": 475.0, "Acrobot-v1": -100.0}

# Shared by both algorithms (the DQN run sets max_planning_steps=0).
DEFAULTS = dict(
    mode="deep", policy_hidden_sizes=(64, 64), policy_batch_size=64, warmup_steps=1000, policy_updates_per_step=1,
    target_update_period=500, double_q=True, epsilon_decay_steps=10_000, num_eval_episodes=5,
    model_train_every=1000, num_members=5, num_model_elites=5, model_hidden_sizes=(64, 64),
    model_epochs=5, model_batch_size=256, model_patience=0, max_holdout=2000, max_episodes=2000,
    termination="known",
)


def parse_overrides(pairs):
    fields = {f.name: f for f in dataclasses.fields(dyna.Config)}
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise SystemExit(f"error: --set expects field=value, got {pair!r}")
        name, value = pair.split("=", 1)
        if name not in fields:
            raise SystemExit(f"error: unknown dyna.Config field {name!r}; valid: {', '.join(fields)}")
        current = getattr(dyna.Config(), name)
        if isinstance(current, tuple):
            out[name] = tuple(int(v) for v in value.split(","))
        elif isinstance(current, bool):
            out[name] = value.lower() in ("1", "true", "yes")
        else:
            out[name] = type(current)(value)
    return out


def run(config, num_seeds, seed, threshold, label):
    """Runs seeds as one vmapped program until all reach `threshold` or the budget ends.

    Returns `(env_steps [iters], eval_return [seeds, iters], wall s, compile s)`.
    """
    train = dyna.make_train(config)
    hp = jax.tree.map(lambda x: jnp.full((num_seeds,), x, jnp.float32), config.hparams())
    keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)
    start = time.perf_counter()
    init, step = jax.jit(jax.vmap(train.init)), jax.jit(jax.vmap(train.step))
    state = init(keys, hp)
    steps, evals, compile_s = [], [], None
    for it in range(config.num_iterations):
        state, metrics = step(state)
        evals.append(np.asarray(metrics.eval_return))
        steps.append(int(metrics.env_steps[0]))
        if compile_s is None:
            compile_s = time.perf_counter() - start
        reached = (np.stack(evals, 1) >= threshold).any(1)
        print(f"{label}: {steps[-1]} steps, eval {np.round(evals[-1], 0).tolist()}, "
              f"solved {int(reached.sum())}/{num_seeds}, {time.perf_counter() - start:.0f} s", flush=True)
        if reached.all():
            break
    return np.array(steps), np.stack(evals, 1), time.perf_counter() - start, compile_s


def steps_to_threshold(steps, evals, threshold):
    """Per seed: env steps at the first evaluation >= threshold (None if never)."""
    hit = evals >= threshold
    return [int(steps[np.argmax(h)]) if h.any() else None for h in hit]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="CartPole-v1", choices=sorted(THRESHOLDS))
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=50_000, help="env-step budget after the random warm-up")
    parser.add_argument("--eval-every", type=int, default=1000, help="env steps per iteration")
    parser.add_argument("--planning-steps", type=int, default=4, help="Dyna-Q's planning updates per env step")
    parser.add_argument("--threshold", type=float, default=None)
    parser.add_argument("--only", choices=("dyna", "dqn"), default=None)
    parser.add_argument("--termination", choices=dyna.TERMINATIONS, default="learned",
                        help="synthetic terminations: the env's known function, or the ensemble's head")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--png", default="")
    args = parser.parse_args()
    threshold = THRESHOLDS[args.env] if args.threshold is None else args.threshold
    base = {**DEFAULTS, "env_id": args.env, "steps_per_iteration": args.eval_every,
            "num_iterations": -(-args.steps // args.eval_every), "termination": args.termination,
            **parse_overrides(args.set)}
    configs = {
        "dyna": dyna.Config(**{**base, "max_planning_steps": args.planning_steps}),
        "dqn": dyna.Config(**{**base, "max_planning_steps": 0}),
    }
    if args.only:
        configs = {args.only: configs[args.only]}
    result = {"machine": _common.machine(), "env": args.env, "threshold": threshold, "seeds": args.seeds,
              "config": {k: v for k, v in _common.plain_config(configs[next(iter(configs))]).items()
                         if k != "max_planning_steps"},
              "planning_steps": args.planning_steps}
    curves = {}
    for name, config in configs.items():
        steps, evals, wall, compile_s = run(config, args.seeds, args.seed, threshold, name)
        solved = steps_to_threshold(steps, evals, threshold)
        # An unsolved seed counts as the whole budget (a lower bound on its true steps).
        capped = [s if s is not None else config.warmup_steps + config.num_iterations * config.steps_per_iteration
                  for s in solved]
        result[name] = {
            "steps_to_threshold": solved,
            "median_steps_to_threshold": float(np.median(capped)),
            "unsolved_seeds": sum(s is None for s in solved),
            "eval_env_steps": steps.tolist(),
            "mean_eval_return": np.round(evals.mean(0), 1).tolist(),
            "wall_s_including_compile": round(wall, 1),
            "compile_and_first_iteration_s": round(compile_s, 1),
        }
        curves[name] = (steps, evals)
    if len(configs) == 2:
        ratio = result["dyna"]["median_steps_to_threshold"] / result["dqn"]["median_steps_to_threshold"]
        result["dyna_over_dqn_median_steps"] = round(ratio, 3)
        result["target_met (<= 2/3)"] = bool(ratio <= 2 / 3 and result["dyna"]["unsolved_seeds"] == 0)
    print(json.dumps(result, indent=1))
    if args.png:
        plot(args.png, curves, args.env, threshold)


def plot(path, curves, env_id, threshold):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, (steps, evals) in curves.items():
        label = "deep Dyna-Q" if name == "dyna" else "DQN"
        ax.plot(steps, evals.mean(0), marker="o", ms=3, label=f"{label} (mean of {evals.shape[0]} seeds)")
        ax.fill_between(steps, evals.min(0), evals.max(0), alpha=0.2)
    ax.axhline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:g}")
    ax.set_xlabel("env steps")
    ax.set_ylabel("greedy evaluation return")
    ax.set_title(env_id)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
