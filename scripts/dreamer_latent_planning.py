"""Latent planning (PlaNet-style): the Dreamer world model, with a planner of
`jaxmbrl.planning` acting instead of the actor, on gymnax Pendulum-v1 (CEM) or
CartPole-v1 (discrete CEM). Training acts with the planner plus exploration noise;
evaluation plans without noise.

    python scripts/dreamer_latent_planning.py --env Pendulum-v1 --seeds 2 --png docs/dreamer_latent_planning.png
"""
from __future__ import annotations

import argparse
import json

from jaxmbrl.algorithms import dreamer

try:
    import _common
    from dreamer_cartpole import plot, report
except ImportError:  # run from elsewhere
    from scripts import _common
    from scripts.dreamer_cartpole import plot, report

SETTINGS = {
    # One 200-step episode per env and iteration; 40 world-model updates per iteration.
    "Pendulum-v1": dict(controller="cem", num_envs=2, num_iterations=15, steps_per_iteration=200,
                        model_train_every=5, train_ratio=64, planner_horizon=12, planner_samples=128,
                        planner_elites=16, planner_iterations=4, num_eval_episodes=2),
    "CartPole-v1": dict(controller="discrete_cem", num_envs=2, num_iterations=15, steps_per_iteration=200,
                        model_train_every=5, train_ratio=64, planner_horizon=12, planner_samples=128,
                        planner_elites=16, planner_iterations=4, num_eval_episodes=2),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pendulum-v1", choices=sorted(SETTINGS))
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="dreamer.Config overrides")
    parser.add_argument("--png", default="")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    print(f"machine: {_common.machine()}")
    cfg = dreamer.Config(env_id=args.env, **{**SETTINGS[args.env], **_common.parse_sets(args.set)})
    print(cfg)
    train = dreamer.make_train(cfg)
    table, wall, compile_s = _common.run_seeds(train, cfg, args.seeds, args.seed,
                                               desc=f"latent {cfg.controller} {args.env}", postfix="eval_return")
    steps, evals = report(f"Dreamer world model + latent {cfg.controller}, {args.env}", table, wall, compile_s)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": steps.tolist(), "eval_return": evals.tolist(), "wall_s": wall}, f)
    if args.png:
        plot(args.png, {f"latent {cfg.controller}": (steps, evals)}, f"Latent planning, {args.env}")


if __name__ == "__main__":
    main()
