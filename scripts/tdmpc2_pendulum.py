"""TD-MPC2 on gymnax Pendulum-v1: seeds vmapped in one program, greedy (noise-free)
evaluation return against env steps, beside MBPO's curve (docs/BENCHMARKS.md: mean
evaluation >= -200 from 1,800 env steps).

Defaults are `tdmpc2.Config()`: 200-step iterations (one episode; the first random, as
TD-MPC2's seed steps), one update per env step on 256 windows of 3 steps, the paper's
planner (mppi_elites: 6 iterations, 512 samples, 64 elites, 24 policy trajectories,
horizon 3, terminal Q), a 64-wide SimNorm latent and 256-256 MLPs, 5 Q heads.
`--reduced` plans with 256 samples, 32 elites, 4 iterations and 12 policy trajectories;
`--small` halves every network's width to 128 (a 2-core CPU's setting).
Target: mean evaluation return >= -200 by 3,000 env steps.

    python scripts/tdmpc2_pendulum.py [--seeds 5] [--reduced] [--small] [--set field=value ...] [--png curve.png]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

import _common
from jaxmbrl import run
from jaxmbrl.algorithms import tdmpc2

REDUCED = dict(planner_samples=256, planner_elites=32, planner_iterations=4, planner_proposals=12)
SMALL = dict(model_hidden_sizes=(128, 128), policy_hidden_sizes=(128, 128))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--target", type=float, default=-200.0)
    parser.add_argument("--reduced", action="store_true", help="the reduced planner (see the docstring)")
    parser.add_argument("--small", action="store_true", help="128-wide networks (see the docstring)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--png", default="")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    overrides = {**(REDUCED if args.reduced else {}), **(SMALL if args.small else {}),
                 **run._config.parse_assignments(args.set)}
    _, config, hparams = run.resolve("tdmpc2", overrides=overrides)
    train = tdmpc2.make_train(config)
    table, wall, compile_s = _common.run_seeds(train, config, args.seeds, args.seed, desc="TD-MPC2 Pendulum-v1",
                                               hparams=hparams, postfix="eval_return")
    steps, evals = table["env_steps"][0], table["eval_return"]
    mean = evals.mean(0)
    hit = np.flatnonzero(np.nan_to_num(mean, nan=-np.inf) >= args.target)
    result = {
        "machine": _common.machine(),
        "config": _common.plain_config(config),
        "hparams": {k: float(v) for k, v in hparams._asdict().items()},
        "env_steps": steps.tolist(),
        "eval_return": np.round(evals, 1).tolist(),
        f"env_steps_to_mean_eval_{args.target:g}": int(steps[hit[0]]) if hit.size else None,
        "wall_s_including_compile": round(wall, 1),
        "compile_and_first_iteration_s": round(compile_s, 1),
    }
    print(f"machine: {result['machine']}; {wall:.0f} s wall for {args.seeds} seeds")
    _common.print_eval_table(steps, evals)
    print(json.dumps({k: v for k, v in result.items() if k.startswith("env_steps_to") or k.startswith("wall")}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    if args.png:
        _common.plot_curves(args.png, {f"TD-MPC2 ({args.seeds} seeds), noise-free eval": evals[:, 1:]},
                            "Pendulum-v1", "iteration (200 env steps each, after 1 random)")


if __name__ == "__main__":
    main()
