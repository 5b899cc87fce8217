"""MuZero on gymnax CartPole-v1: seeds vmapped in one program, greedy evaluation return
against env steps.

Defaults are `muzero.Config()`: 8 envs, 1,600 env steps per iteration (the first random),
Gumbel MuZero with 32 simulations, K = 5 unroll steps, 10-step value targets, 101-bin
two-hot value and reward heads, 32 replayed unroll steps per env step. Target: a mean
evaluation return of 475 (beside Dreamer's 33,600 and deep Dyna-Q's median 9,000 env
steps in docs/BENCHMARKS.md).

    python scripts/muzero_cartpole.py [--seeds 3] [--set field=value ...] [--png curve.png]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

import _common
from jaxmbrl import run
from jaxmbrl.algorithms import muzero


def main(doc=__doc__, env="CartPole-v1", seeds=3, target=475.0, max_minutes=0.0, fields=None):
    """Runs the script; `muzero_minatar.py` calls it with its own defaults (`fields`: Config
    overrides that `--set` overrides in turn)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=seeds)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=target)
    parser.add_argument("--env", default=env)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--max-minutes", type=float, default=max_minutes, help="stop after this wall time (0: none)")
    parser.add_argument("--png", default="")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    overrides = {"env_id": args.env, **(fields or {}), **run._config.parse_assignments(args.set)}
    _, config, hparams = run.resolve("muzero", overrides=overrides)
    train = muzero.make_train(config)
    table, wall, compile_s = _common.run_seeds(train, config, args.seeds, args.seed, desc=f"MuZero {args.env}",
                                               hparams=hparams, postfix="eval_return",
                                               max_seconds=args.max_minutes * 60 or None)
    steps = table["env_steps"][0]
    evals = table["eval_return"]  # [seeds, iterations]
    mean = evals.mean(0)  # NaN for the random iteration
    hit = np.flatnonzero(np.nan_to_num(mean, nan=-np.inf) >= args.target)
    per_seed = [int(steps[np.flatnonzero(np.nan_to_num(row, nan=-np.inf) >= args.target)[0]])
                if (np.nan_to_num(row, nan=-np.inf) >= args.target).any() else None for row in evals]
    result = {
        "machine": _common.machine(),
        "config": _common.plain_config(config),
        "hparams": {k: float(v) for k, v in hparams._asdict().items()},
        "env_steps": steps.tolist(),
        "eval_return": np.round(evals, 1).tolist(),
        f"env_steps_to_mean_eval_{args.target:g}": int(steps[hit[0]]) if hit.size else None,
        f"env_steps_to_{args.target:g}_per_seed": per_seed,
        "wall_s_including_compile": round(wall, 1),
        "compile_and_first_iteration_s": round(compile_s, 1),
    }
    print(f"machine: {result['machine']}; {wall:.0f} s wall, {int(steps[-1])} env steps")
    _common.print_eval_table(steps, evals)
    print(json.dumps({k: v for k, v in result.items() if k not in ("eval_return", "env_steps")}, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.png:
        _common.plot_curves(args.png, {f"MuZero ({args.seeds} seeds), greedy eval": evals[:, config.warmup_iterations:]},
                            args.env, f"iteration ({steps[1] - steps[0]} env steps each, after 1 random)")


if __name__ == "__main__":
    main()
