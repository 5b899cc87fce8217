"""Planners on the true gymnax dynamics: mean episode return and seconds per action.

    python scripts/oracle_planners.py                 # larger settings, all planners
    python scripts/oracle_planners.py --size test     # the settings tests/test_planning.py uses
    python scripts/oracle_planners.py --only cem icem --episodes 4
    python scripts/oracle_planners.py --only mppi --set temperature=0.5 noise_scale=0.2

Each planner plans on the env *state* with `jaxmbrl.envs.true_model` as its model, so the
numbers measure the planner alone (no model error). Planners are built by name with
`planning.make_planner` (shapes only); their floats are the planner's HParams, passed to
every `plan` call (`--set FIELD=VALUE` overrides a field in every planner that has it).
Episodes are vmapped and the steps scanned in one jitted program; seconds per action is
the wall time of a second (already compiled) run divided by the number of steps (all
episodes act in parallel).
"""
from __future__ import annotations

import argparse
import time

import jax

import jaxmbrl.planning as planning
from jaxmbrl.envs import make, true_model
from jaxmbrl.testing import oracle_episode_returns

PENDULUM, CARTPOLE = "Pendulum-v1", "CartPole-v1"

# name -> (env, shapes, floats): "test" matches tests/test_planning.py, "large" is for docs.
# Planners without elites or iterations ignore those shapes.
SETTINGS = {
    "test": {
        "random_shooting": (PENDULUM, dict(horizon=15, num_samples=4000), {}),
        "cem": (PENDULUM, dict(horizon=20, num_samples=100, num_elites=10, num_iters=4), {}),
        "icem": (PENDULUM, dict(horizon=20, num_samples=100, num_elites=10, num_iters=3), {}),
        "mppi": (PENDULUM, dict(horizon=20, num_samples=100, num_iters=2), dict(temperature=1.0)),
        "discrete_random_shooting": (CARTPOLE, dict(horizon=80, num_samples=64), {}),
        "discrete_cem": (CARTPOLE, dict(horizon=80, num_samples=64, num_elites=8, num_iters=2), {}),
    },
    "large": {
        "random_shooting": (PENDULUM, dict(horizon=15, num_samples=4000), {}),
        "cem": (PENDULUM, dict(horizon=30, num_samples=500, num_elites=50, num_iters=5), {}),
        "icem": (PENDULUM, dict(horizon=30, num_samples=300, num_elites=30, num_iters=4), {}),
        "mppi": (PENDULUM, dict(horizon=30, num_samples=500, num_iters=3), dict(temperature=1.0)),
        "discrete_random_shooting": (CARTPOLE, dict(horizon=100, num_samples=256), {}),
        "discrete_cem": (CARTPOLE, dict(horizon=100, num_samples=128, num_elites=16, num_iters=3), {}),
    },
}


def _parse_sets(items):
    fields = planning.planner_float_fields()
    values = {}
    for item in items or ():
        field, sep, value = item.partition("=")
        if not sep or field not in fields:
            raise SystemExit(f"--set {item!r}: expected FIELD=VALUE with FIELD one of {tuple(fields)}")
        values[field] = float(value)
    return values


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", choices=sorted(SETTINGS), default="large")
    parser.add_argument("--only", nargs="*", help="planner names to run (default: all)")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--steps", type=int, default=0, help="steps per episode (default: the time limit)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", metavar="FIELD=VALUE", help="planner floats, e.g. alpha=0.2")
    args = parser.parse_args()
    overrides = _parse_sets(args.set)

    header = ("planner", "env", "mean return", "min", "s/action")
    print(f"{header[0]:26s} {header[1]:12s} {header[2]:>12s} {header[3]:>8s} {header[4]:>9s}  settings")
    for name, (env_id, shapes, floats) in SETTINGS[args.size].items():
        if args.only and name not in args.only:
            continue
        model_fn, _ = true_model(env_id)
        _, _, spec = make(env_id)
        planner = planning.make_planner(name, model_fn, spec, **{"num_elites": 1, "num_iters": 1, **shapes})
        hparams = planning.planner_hparams(name, {**planner.hparams._asdict(), **floats, **overrides})
        planning.check_hparams(name, hparams)
        num_steps = args.steps or spec.max_steps
        run = oracle_episode_returns(env_id, planner, args.episodes, num_steps)
        key = jax.random.PRNGKey(args.seed)
        run(key, hparams).block_until_ready()  # compile
        start = time.perf_counter()
        returns = run(jax.random.fold_in(key, 1), hparams).block_until_ready()
        per_action = (time.perf_counter() - start) / num_steps
        print(f"{name:26s} {env_id:12s} {float(returns.mean()):12.1f} {float(returns.min()):8.1f} "
              f"{per_action:9.4f}  {shapes} {hparams}", flush=True)


if __name__ == "__main__":
    main()
