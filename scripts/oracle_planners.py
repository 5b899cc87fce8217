"""Planners on the true gymnax dynamics: mean episode return and seconds per action.

    python scripts/oracle_planners.py                 # larger settings, all planners
    python scripts/oracle_planners.py --size test     # the settings tests/test_planning.py uses
    python scripts/oracle_planners.py --only cem icem --episodes 4

Each planner plans on the env *state* with `jaxmbrl.envs.true_model` as its model, so the
numbers measure the planner alone (no model error). Episodes are vmapped and the steps
scanned in one jitted program; seconds per action is the wall time of a second (already
compiled) run divided by the number of steps (all episodes act in parallel).
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp

import jaxmbrl.planning as planning
from jaxmbrl.envs import make, true_model
from jaxmbrl.testing import oracle_episode_returns

PENDULUM, CARTPOLE = "Pendulum-v1", "CartPole-v1"

# (env, factory, settings): "test" matches tests/test_planning.py, "large" is for docs.
SETTINGS = {
    "test": {
        "random_shooting": (PENDULUM, planning.random_shooting, dict(horizon=15, num_samples=4000)),
        "cem": (PENDULUM, planning.cem, dict(horizon=20, num_samples=100, num_elites=10,
                                             num_iters=4)),
        "icem": (PENDULUM, planning.icem, dict(horizon=20, num_samples=100, num_elites=10,
                                               num_iters=3)),
        "mppi": (PENDULUM, planning.mppi, dict(horizon=20, num_samples=100, num_iters=2,
                                               lambda_=1.0)),
        "discrete_random_shooting": (CARTPOLE, planning.discrete_random_shooting,
                                     dict(horizon=80, num_samples=64)),
        "discrete_cem": (CARTPOLE, planning.discrete_cem,
                         dict(horizon=80, num_samples=64, num_elites=8, num_iters=2)),
    },
    "large": {
        "random_shooting": (PENDULUM, planning.random_shooting, dict(horizon=15, num_samples=4000)),
        "cem": (PENDULUM, planning.cem, dict(horizon=30, num_samples=500, num_elites=50,
                                             num_iters=5)),
        "icem": (PENDULUM, planning.icem, dict(horizon=30, num_samples=300, num_elites=30,
                                               num_iters=4)),
        "mppi": (PENDULUM, planning.mppi, dict(horizon=30, num_samples=500, num_iters=3,
                                               lambda_=1.0)),
        "discrete_random_shooting": (CARTPOLE, planning.discrete_random_shooting,
                                     dict(horizon=100, num_samples=256)),
        "discrete_cem": (CARTPOLE, planning.discrete_cem,
                         dict(horizon=100, num_samples=128, num_elites=16, num_iters=3)),
    },
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SETTINGS), default="large")
    parser.add_argument("--only", nargs="*", help="planner names to run (default: all)")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    header = ("planner", "env", "mean return", "min", "s/action")
    print(f"{header[0]:26s} {header[1]:12s} {header[2]:>12s} {header[3]:>8s} {header[4]:>9s}  settings")
    for name, (env_id, factory, kwargs) in SETTINGS[args.size].items():
        if args.only and name not in args.only:
            continue
        model_fn, _ = true_model(env_id)
        _, _, spec = make(env_id)
        planner = factory(model_fn, spec, **kwargs)
        num_steps = spec.max_steps
        run = oracle_episode_returns(env_id, planner, args.episodes, num_steps)
        key = jax.random.PRNGKey(args.seed)
        run(key).block_until_ready()  # compile
        start = time.perf_counter()
        returns = run(jax.random.fold_in(key, 1)).block_until_ready()
        per_action = (time.perf_counter() - start) / num_steps
        print(f"{name:26s} {env_id:12s} {float(returns.mean()):12.1f} {float(returns.min()):8.1f} "
              f"{per_action:9.4f}  {kwargs}", flush=True)


if __name__ == "__main__":
    main()
