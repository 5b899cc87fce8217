"""PETS on gymnax Pendulum-v1: 5 seeds vmapped in one program, 10 episodes of 200 steps.

Learned dynamics (5-member Gaussian ensemble), known reward, CEM (population 200,
horizon 15, 5 iterations, 20 elites, 10 particles, TSinf): `pets.Config()` defaults.
The first episode acts at random. Target: mean return over episodes 6-10 and all
seeds >= -200. Reference: mbrl-lib 0.2.0, one seed, gymnasium Pendulum-v1, returned
-920, -124, -382, -397, -117, -1, -127, -132 over its first 8 episodes after one
random episode.

    python scripts/pets_pendulum.py [--seeds 5] [--set field=value ...] [--png PATH]
"""
from __future__ import annotations

import argparse
import json

import numpy as np

import _common
from jaxmbrl import run
from jaxmbrl.algorithms import pets

MBRL_LIB_RETURNS = [-920, -124, -382, -397, -117, -1, -127, -132]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--png", default="")
    args = parser.parse_args()
    overrides = {"env_id": "Pendulum-v1", "num_iterations": 10, **run._config.parse_assignments(args.set)}
    _, config, hparams = run.resolve("pets", overrides=overrides)
    train = pets.make_train(config)
    table, wall, compile_s = _common.run_seeds(train, config, args.seeds, args.seed, desc="PETS Pendulum-v1",
                                               hparams=hparams)
    returns = table["episode_return"]  # [seeds, episodes]
    result = {
        "machine": _common.machine(),
        "config": _common.plain_config(config),
        "hparams": _common.plain_hparams(hparams),
        "returns_per_seed": np.round(returns, 1).tolist(),
        "mean_return_per_episode": np.round(returns.mean(0), 1).tolist(),
        "mean_return_episodes_6_to_10": round(float(returns[:, 5:10].mean()), 1),
        "wall_s_including_compile": round(wall, 1),
        "compile_and_first_iteration_s": round(compile_s, 1),
    }
    print(json.dumps(result, indent=1))
    if args.png:
        _common.plot_curves(args.png, {f"PETS, jaxmbrl ({args.seeds} seeds)": returns}, "Pendulum-v1", "episode",
                            reference=("mbrl-lib 0.2.0, 1 seed (episode 1 random, not reported)",
                                       [np.nan] + MBRL_LIB_RETURNS))


if __name__ == "__main__":
    main()
