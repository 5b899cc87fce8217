"""PETS on a Brax task with a known reward (brax/inverted_pendulum, brax/reacher): seeds
vmapped in one program.

Iterations are one 1,000-step episode's worth of env steps (one random iteration first);
an episode that ends inside an iteration (a dropped pole) is followed by a fresh one.
Learned dynamics, known reward and termination (`jaxmbrl.envs.reward_fn("brax/...")`), CEM.

Defaults fit a 2-core CPU in about ten minutes for 5 seeds on inverted_pendulum: CEM
population 100, horizon 15, 3 iterations, 5 particles; a 5 x 64-64-64 ensemble. A GPU run
would take PETS' MuJoCo settings instead (population 500, horizon 30, 5 iterations, 20
particles, a 5 x 200-200-200-200 ensemble: `--set planner_samples=500 ...`).

Target on brax/inverted_pendulum: a 1,000-step episode (return 1,000) within the first
5 MPC episodes on at least 4 of 5 seeds.

    python scripts/brax_pets.py --env brax/inverted_pendulum [--seeds 5] [--target 1000]
    python scripts/brax_pets.py --env brax/reacher --iterations 11 --target -5
"""
from __future__ import annotations

import argparse
import json

import numpy as np

import _common
from jaxmbrl import run
from jaxmbrl.algorithms import pets

DEFAULTS = dict(
    steps_per_iteration=1000, planner_horizon=15, planner_samples=100, planner_elites=10, planner_iterations=3,
    planner_particles=5,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_brax_arguments(parser)
    parser.add_argument("--iterations", type=int, default=6, help="iterations, the random one included")
    parser.add_argument("--target", type=float, default=1000.0, help="episode return that counts as solved")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--png", default="")
    args = parser.parse_args()
    overrides = {**DEFAULTS, "env_id": args.env, "env_kwargs": {"backend": args.backend},
                 "num_iterations": args.iterations, **run._config.parse_assignments(args.set)}
    _, config, _ = run.resolve("pets", overrides=overrides)
    train = pets.make_train(config)
    table, wall, compile_s = _common.run_seeds(train, config, args.seeds, args.seed, desc=f"PETS {args.env}")
    until = _common.mpc_episodes_until(table, config.warmup_iterations, args.target)
    result = {
        "machine": _common.machine(),
        "config": _common.plain_config(config),
        "mean_episode_return_per_iteration": np.round(table["episode_return"], 1).tolist(),
        "best_episode_return_per_iteration": np.round(table["best_episode_return"], 1).tolist(),
        "episodes_per_iteration": table["episodes"].tolist(),
        f"mpc_episodes_until_{args.target:g}_upper_bound": until,
        "seeds_within_5_mpc_episodes": sum(e is not None and e <= 5 for e in until),
        "wall_s_including_compile": round(wall, 1),
        "compile_and_first_iteration_s": round(compile_s, 1),
    }
    print(json.dumps(result, indent=1))
    if args.png:
        _common.plot_curves(args.png, {f"PETS ({args.seeds} seeds), best episode": table["best_episode_return"]},
                            args.env, "iteration (1,000 env steps; the first random)")


if __name__ == "__main__":
    main()
