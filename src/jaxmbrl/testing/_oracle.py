"""Running a planner against the true dynamics (oracle control)."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxmbrl.envs._make import make


def oracle_episode_returns(env_id: str, planner, num_episodes: int, num_steps: int, **env_kwargs):
    """A jitted `(key, hparams=None) -> returns [num_episodes]` of `planner` acting in `env_id`.

    The planner's `model_params` are the env params and its observation is the env
    state, as for `jaxmbrl.envs.true_model`. `hparams` is the planner's HParams passed to
    every `plan` call (`None`: `planner.hparams`); new values do not recompile. Rewards
    count until the first termination (no auto-reset), so CartPole's return is the steps
    the pole stayed up. Episodes are vmapped, steps scanned. `env_kwargs` go to `make`
    (e.g. a Brax task's `backend`), as they went to the `true_model` the planner steps.
    """
    env, env_params, _ = make(env_id, **env_kwargs)

    def episode(key, hparams):
        reset_key, key = jax.random.split(key)
        _, env_state = env.reset(reset_key, env_params)

        def step(carry, step_key):
            env_state, plan_state, alive, total = carry
            plan_key, env_key = jax.random.split(step_key)
            action, plan_state, _ = planner.plan(plan_key, plan_state, env_params, env_state, hparams)
            _, env_state, reward, terminated, _ = env.step_env(env_key, env_state, action, env_params)
            total = total + jnp.where(alive, reward, 0.0)
            return (env_state, plan_state, alive & ~terminated, total), None

        init = (env_state, planner.init(), jnp.ones((), jnp.bool_), jnp.zeros((), jnp.float32))
        (_, _, _, total), _ = jax.lax.scan(step, init, jax.random.split(key, num_steps))
        return total

    def run(key, hparams=None):
        keys = jax.random.split(key, num_episodes)
        return jax.vmap(episode, in_axes=(0, None))(keys, hparams)

    return jax.jit(run)
