"""PETS on gymnax CartPole-v1 (discrete actions): 5 seeds vmapped in one program.

Learned dynamics, known reward and termination, discrete CEM over per-step categorical
distributions. Iterations are 500 env steps (one random iteration first); an episode
that ends inside an iteration is followed by a fresh one. Target: an episode return of
500 within the first 5 MPC episodes for at least 4 of 5 seeds.

    python scripts/pets_cartpole.py [--seeds 5] [--set field=value ...]
"""
from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

import _common
from jaxmbrl import envs
from jaxmbrl import run
from jaxmbrl.algorithms import pets

DEFAULTS = dict(
    env_id="CartPole-v1", num_iterations=6, steps_per_iteration=500, planner="discrete_cem",
    planner_horizon=60, planner_samples=100, planner_elites=10, planner_iterations=3, planner_particles=5,
)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    args = parser.parse_args()
    _, config, hparams = run.resolve("pets", overrides={**DEFAULTS, **run._config.parse_assignments(args.set)})
    train = pets.make_train(config)
    table, wall, compile_s = _common.run_seeds(train, config, args.seeds, args.seed, desc="PETS CartPole-v1",
                                               hparams=hparams)
    best = table["best_episode_return"]  # [seeds, iterations]
    episodes_to_500 = _common.mpc_episodes_until(table, config.warmup_iterations, 500)
    result = {
        "machine": _common.machine(),
        "config": _common.plain_config(config),
        "hparams": _common.plain_hparams(hparams),
        "mean_episode_return_per_iteration": np.round(table["episode_return"], 1).tolist(),
        "best_episode_return_per_iteration": np.round(best, 1).tolist(),
        "episodes_per_iteration": table["episodes"].tolist(),
        "mpc_episodes_until_500_upper_bound": episodes_to_500,
        "seeds_reaching_500_within_5_mpc_episodes": sum(e is not None and e <= 5 for e in episodes_to_500),
        "wall_s_including_compile": round(wall, 1),
    }
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
