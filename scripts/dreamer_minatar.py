"""Dreamer with the CNN encoder on gymnax Breakout-MinAtar (10 x 10 x 4), beside a
uniformly random policy, for a wall-time budget (default 30 minutes, compile included).

    python scripts/dreamer_minatar.py --minutes 30 --png docs/dreamer_minatar.png
"""
from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp
import numpy as np

from jaxmbrl import envs
from jaxmbrl.algorithms import dreamer

try:
    import _common
    from dreamer_cartpole import plot, report
except ImportError:  # run from elsewhere
    from scripts import _common
    from scripts.dreamer_cartpole import plot, report


def random_policy_return(env_id: str, episodes: int, seed: int) -> np.ndarray:
    """Returns [episodes] of uniformly random actions, each a full episode (one program)."""
    env, env_params, spec = envs.make(env_id)

    def one(key):
        k_reset, k_scan = jax.random.split(key)
        obs, state = envs.reset(env, env_params, k_reset)

        def body(carry, k):
            obs, state, ret, alive = carry
            k_act, k_env = jax.random.split(k)
            t, obs, state = envs.step(env, env_params, k_env, state, obs, envs.random_action(k_act, spec))
            ret = ret + jnp.where(alive, t.reward, 0.0)
            return (obs, state, ret, alive & ~(t.terminated | t.truncated)), None

        carry = (obs, state, jnp.zeros((), jnp.float32), jnp.ones((), bool))
        return jax.lax.scan(body, carry, jax.random.split(k_scan, spec.max_steps))[0][2]

    keys = jax.random.split(jax.random.PRNGKey(seed), episodes)
    return np.asarray(jax.jit(jax.vmap(one))(keys))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Breakout-MinAtar")
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="dreamer.Config overrides")
    parser.add_argument("--png", default="")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    print(f"machine: {_common.machine()}; devices: {jax.devices()}")
    # A 30-minute CPU budget sees well under 100k steps; the cap keeps replay at ~160 MB.
    base = dict(env_id=args.env, encoder="cnn", num_iterations=400, steps_per_iteration=250, model_train_every=5,
                buffer_capacity=25_000,
                train_ratio=32, num_eval_episodes=8)
    cfg = dreamer.Config(**{**base, **_common.parse_sets(args.set)})
    print(cfg)
    train = dreamer.make_train(cfg)
    table, wall, compile_s = _common.run_seeds(train, cfg, args.seeds, args.seed, desc=f"Dreamer {args.env}",
                                               max_seconds=60 * args.minutes, postfix="eval_return")
    steps, evals = report(f"Dreamer (CNN) {args.env}", table, wall, compile_s)
    rand = random_policy_return(args.env, 100, args.seed)
    print(f"random policy: mean {rand.mean():.2f} +- {rand.std() / np.sqrt(rand.size):.2f} over {rand.size} episodes")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"steps": steps.tolist(), "eval_return": evals.tolist(), "wall_s": wall,
                       "random_mean": float(rand.mean()), "devices": str(jax.devices())}, f)
    if args.png:
        random_curve = np.full((1, steps.size), rand.mean())
        plot(args.png, {"Dreamer (CNN encoder)": (steps, evals), "random policy": (steps, random_curve)},
             f"Dreamer, {args.env}, {wall / 60:.0f} min on {jax.devices()[0].platform.upper()}")


if __name__ == "__main__":
    main()
