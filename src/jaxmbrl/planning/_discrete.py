"""Sampling-based planners over discrete action sequences [H] int32."""
from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxmbrl.planning._base import (
    check_common,
    PlanInfo,
    Planner,
    PlannerState,
    check_count,
    check_discrete,
    check_elites,
    check_float,
    evaluate_candidates,
    shift,
)
from jaxmbrl.types import ModelFn


def _check_common(name, spec, horizon, num_samples, num_particles, discount):
    return check_common(name, spec, horizon, num_samples, num_particles, discount, discrete=True)


def discrete_random_shooting(model_fn: ModelFn, spec, *, horizon: int, num_samples: int,
                             num_particles: int = 1, discount: Any = 1.0) -> Planner:
    """Random shooting over uniformly random int32 action sequences [N, H].

    The previous call's best sequence, shifted by one step (last step random), replaces
    the last sample: exact ties (common under survival rewards) then go to a fresh
    sample, which keeps the choice among equally good plans random instead of always
    repeating the old one. `PlannerState.mean` holds that sequence one-hot, [H, num_actions].

    `plan` executes the first action of the best sequence (an int32 scalar);
    `PlanInfo.plan` is that sequence [H] and `expected_return` its return.

    Args:
      model_fn: `(key, params, obs, action[] int32) -> (next_obs, reward, terminated)`.
      spec: the environment's `EnvSpec` (discrete).
      horizon: H. num_samples: N. num_particles: P.
      discount: per-step discount of predicted rewards.
    """
    name = "discrete_random_shooting"
    horizon, num_samples, num_particles = _check_common(
        name, spec, horizon, num_samples, num_particles, discount)
    num_actions = spec.num_actions

    def init() -> PlannerState:
        return PlannerState(mean=jnp.full((horizon, num_actions), 1.0 / num_actions, jnp.float32))

    def plan(key, state, model_params, obs):
        sample_key, eval_key = jax.random.split(key)
        samples = jax.random.randint(sample_key, (num_samples, horizon), 0, num_actions, jnp.int32)
        previous = jnp.argmax(state.mean, -1).astype(jnp.int32)
        samples = samples.at[-1].set(shift(previous, samples[-1, -1]))
        returns = evaluate_candidates(model_fn, model_params, eval_key, obs, samples, discount,
                                      num_particles)
        best = jnp.argmax(returns)
        best_plan = samples[best]
        new_state = PlannerState(mean=jax.nn.one_hot(best_plan, num_actions, dtype=jnp.float32))
        return best_plan[0], new_state, PlanInfo(returns[best], best_plan)

    return Planner(init, plan)


def discrete_cem(model_fn: ModelFn, spec, *, horizon: int, num_samples: int, num_elites: int,
                 num_iters: int = 3, alpha: Any = 0.1, uniform_mix: Any = 0.3,
                 num_particles: int = 1, discount: Any = 1.0) -> Planner:
    """Cross-entropy method over independent per-step categorical distributions.

    `PlannerState.mean` holds the probabilities [H, num_actions]. Each iteration samples
    N sequences, refits every step's probabilities to the action frequencies among the
    `num_elites` best, smoothed as `alpha * old + (1 - alpha) * frequencies`. The
    most likely sequence of the current distribution is always one of the samples
    (the last one, so that exact ties, common under survival rewards, go to fresh
    samples rather than always to the mode).

    Each call starts from the previous probabilities shifted by one step (last step
    uniform) and mixed with the uniform distribution by `uniform_mix`. This is the
    discrete counterpart of continuous CEM restarting its std: the refit probabilities
    are nearly one-hot after a call, and starting the next call from them would only
    ever resample the old plan (CartPole-v1, true dynamics, H=50, N=64, K=8, two
    iterations, 8 episodes: pure shifting kept the pole up for 150 steps on average, a
    mix of 0.3 for 430; with H=80 and a mix of 0.3 all 8 lasted 500).

    `plan` executes the first action of the best sequence sampled over all iterations,
    which is exact for the sampled set, whereas the distribution's mode can mix steps of
    different elites; `PlanInfo.plan` is that sequence [H] int32 and `expected_return`
    its return.

    Args:
      model_fn: `(key, params, obs, action[] int32) -> (next_obs, reward, terminated)`.
      spec: the environment's `EnvSpec` (discrete).
      horizon: H. num_samples: N. num_elites: K <= N. num_iters: iterations per call.
      alpha: weight kept on the old probabilities, in [0, 1).
      uniform_mix: weight of the uniform distribution in each call's starting
        probabilities, in [0, 1] (1 restarts from uniform every call).
      num_particles: P. discount: per-step discount of predicted rewards.
    """
    name = "discrete_cem"
    horizon, num_samples, num_particles = _check_common(
        name, spec, horizon, num_samples, num_particles, discount)
    num_elites = check_elites(name, num_elites, num_samples)
    num_iters = check_count(name, "num_iters", num_iters)
    check_float(name, "alpha", alpha, 0.0, 1.0, high_open=True,
                hint="; alpha is the weight kept on the old probabilities (0 = no smoothing)")
    check_float(name, "uniform_mix", uniform_mix, 0.0, 1.0)
    num_actions = spec.num_actions
    uniform = jnp.full((num_actions,), 1.0 / num_actions, jnp.float32)

    def init() -> PlannerState:
        return PlannerState(mean=jnp.broadcast_to(uniform, (horizon, num_actions)))

    def plan(key, state, model_params, obs):
        mix = jnp.asarray(uniform_mix, jnp.float32)
        probs = (1 - mix) * shift(state.mean, uniform) + mix * uniform
        momentum = jnp.asarray(alpha, jnp.float32)

        def iteration(carry, iter_key):
            probs, best_return, best_plan = carry
            sample_key, eval_key = jax.random.split(iter_key)
            samples = jax.random.categorical(sample_key, jnp.log(probs), -1,
                                             (num_samples, horizon)).astype(jnp.int32)
            samples = samples.at[-1].set(jnp.argmax(probs, -1).astype(jnp.int32))
            returns = evaluate_candidates(model_fn, model_params, eval_key, obs, samples,
                                          discount, num_particles)
            i = jnp.argmax(returns)
            better = returns[i] > best_return
            best_return = jnp.where(better, returns[i], best_return)
            best_plan = jnp.where(better, samples[i], best_plan)
            _, idx = jax.lax.top_k(returns, num_elites)
            freqs = jax.nn.one_hot(samples[idx], num_actions, dtype=jnp.float32).mean(0)
            probs = momentum * probs + (1 - momentum) * freqs
            return (probs, best_return, best_plan), None

        init_carry = (probs, jnp.full((), -jnp.inf, jnp.float32),
                      jnp.argmax(probs, -1).astype(jnp.int32))
        (probs, best_return, best_plan), _ = jax.lax.scan(iteration, init_carry,
                                                          jax.random.split(key, num_iters))
        return best_plan[0], PlannerState(mean=probs), PlanInfo(best_return, best_plan)

    return Planner(init, plan)
