"""Sampling-based planners over discrete action sequences [H] int32.

As for the continuous planners, `plan(key, state, model_params, obs, hparams=None)` takes
the planner's floats as its own HParams (`DiscreteRandomShootingHParams`,
`DiscreteCEMHParams`), and every planner takes an optional terminal `value_fn` and a
`proposal` policy (returning an int action) whose sequences join the population.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp

from jaxmbrl.planning._base import (
    MOMENTUM,
    UNIT,
    PlanInfo,
    Planner,
    PlannerState,
    ProposalFn,
    ValueFn,
    call_hparams,
    check_common,
    check_count,
    check_elites,
    check_extras,
    evaluate_candidates,
    insert_proposals,
    make_proposer,
    shift,
)
from jaxmbrl.types import ModelFn, check_ranges


class DiscreteRandomShootingHParams(NamedTuple):
    """Floats of `discrete_random_shooting` (`DISCRETE_RANDOM_SHOOTING_RANGES`).

    Attributes:
      discount: per-step discount of predicted rewards, in [0, 1].
    """

    discount: float = 1.0


class DiscreteCEMHParams(NamedTuple):
    """Floats of `discrete_cem` (Python floats or float32 arrays; `DISCRETE_CEM_RANGES`).

    Attributes:
      alpha: weight kept on the old probabilities in each refit, in [0, 1).
      uniform_mix: weight of the uniform distribution in each call's starting
        probabilities, in [0, 1] (1 restarts from uniform every call).
      discount: per-step discount of predicted rewards, in [0, 1].
    """

    alpha: float = 0.1
    uniform_mix: float = 0.3
    discount: float = 1.0


DISCRETE_RANDOM_SHOOTING_RANGES = {"discount": UNIT}
DISCRETE_CEM_RANGES = {"alpha": MOMENTUM, "uniform_mix": UNIT, "discount": UNIT}


def _discrete_proposer(proposal, model_fn, spec, horizon, num_proposals):
    # An out-of-range index would silently wrap in `one_hot` and `categorical`'s log-probs.
    to_action = lambda a: jnp.clip(jnp.asarray(a).astype(jnp.int32).reshape(()),  # noqa: E731
                                   0, spec.num_actions - 1)
    return make_proposer(proposal, model_fn, horizon, num_proposals, to_action)


def discrete_random_shooting(model_fn: ModelFn, spec, *, horizon: int, num_samples: int,
                             num_particles: int = 1, discount: Any = 1.0,
                             value_fn: Optional[ValueFn] = None,
                             proposal: Optional[ProposalFn] = None,
                             num_proposals: int = 0) -> Planner:
    """Random shooting over uniformly random int32 action sequences [N, H].

    The previous call's best sequence, shifted by one step (last step random), replaces
    the last sample: exact ties (common under survival rewards) then go to a fresh
    sample, which keeps the choice among equally good plans random instead of always
    repeating the old one. Proposals take the M samples before it. `PlannerState.mean`
    holds the best sequence one-hot, [H, num_actions].

    `plan` executes the first action of the best sequence (an int32 scalar);
    `PlanInfo.plan` is that sequence [H] and `expected_return` its return.

    Args:
      model_fn: `(key, params, obs, action[] int32) -> (next_obs, reward, terminated)`.
      spec: the environment's `EnvSpec` (discrete).
      horizon: H. num_samples: N. num_particles: P.
      discount: default of `DiscreteRandomShootingHParams.discount`.
      value_fn: optional terminal value `(params, obs) -> []` (see `trajectory_return`).
      proposal: optional policy prior `(key, params, obs) -> action[] int32`.
      num_proposals: M <= N - 1 proposal sequences per call (static).
    """
    name = "discrete_random_shooting"
    horizon, num_samples, num_particles = check_common(name, spec, horizon, num_samples,
                                                       num_particles, discrete=True)
    num_proposals = check_extras(name, value_fn, proposal, num_proposals, num_samples - 1,
                                 "num_samples - 1: the last sample is the warm start")
    defaults = DiscreteRandomShootingHParams(discount=discount)
    check_ranges(name, defaults, DISCRETE_RANDOM_SHOOTING_RANGES)
    num_actions = spec.num_actions
    propose = _discrete_proposer(proposal, model_fn, spec, horizon, num_proposals)

    def init() -> PlannerState:
        return PlannerState(mean=jnp.full((horizon, num_actions), 1.0 / num_actions, jnp.float32))

    def plan(key, state, model_params, obs, hparams=None):
        hp = call_hparams(name, hparams, defaults, DISCRETE_RANDOM_SHOOTING_RANGES)
        key, proposals = propose(key, model_params, obs)
        sample_key, eval_key = jax.random.split(key)
        samples = jax.random.randint(sample_key, (num_samples, horizon), 0, num_actions, jnp.int32)
        samples = insert_proposals(samples, proposals, num_samples - 1)
        previous = jnp.argmax(state.mean, -1).astype(jnp.int32)
        samples = samples.at[-1].set(shift(previous, samples[-1, -1]))
        returns = evaluate_candidates(model_fn, model_params, eval_key, obs, samples, hp.discount,
                                      num_particles, value_fn)
        best = jnp.argmax(returns)
        best_plan = samples[best]
        new_state = PlannerState(mean=jax.nn.one_hot(best_plan, num_actions, dtype=jnp.float32))
        return best_plan[0], new_state, PlanInfo(returns[best], best_plan)

    return Planner(init, plan, defaults)


def discrete_cem(model_fn: ModelFn, spec, *, horizon: int, num_samples: int, num_elites: int,
                 num_iters: int = 3, alpha: Any = 0.1, uniform_mix: Any = 0.3,
                 num_particles: int = 1, discount: Any = 1.0,
                 value_fn: Optional[ValueFn] = None, proposal: Optional[ProposalFn] = None,
                 num_proposals: int = 0) -> Planner:
    """Cross-entropy method over independent per-step categorical distributions.

    `PlannerState.mean` holds the probabilities [H, num_actions]. Each iteration samples
    N sequences, refits every step's probabilities to the action frequencies among the
    `num_elites` best, smoothed as `alpha * old + (1 - alpha) * frequencies`. The
    most likely sequence of the current distribution is always one of the samples
    (the last one, so that exact ties, common under survival rewards, go to fresh
    samples rather than always to the mode); proposals take the M samples before it.

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
      alpha, uniform_mix, discount: defaults of `DiscreteCEMHParams`.
      num_particles: P.
      value_fn: optional terminal value `(params, obs) -> []` (see `trajectory_return`).
      proposal: optional policy prior `(key, params, obs) -> action[] int32`.
      num_proposals: M <= N - 1 proposal sequences per call (static).
    """
    name = "discrete_cem"
    horizon, num_samples, num_particles = check_common(name, spec, horizon, num_samples,
                                                       num_particles, discrete=True)
    num_elites = check_elites(name, num_elites, num_samples)
    num_iters = check_count(name, "num_iters", num_iters)
    num_proposals = check_extras(name, value_fn, proposal, num_proposals, num_samples - 1,
                                 "num_samples - 1: the last sample is the mode")
    defaults = DiscreteCEMHParams(alpha=alpha, uniform_mix=uniform_mix, discount=discount)
    check_ranges(name, defaults, DISCRETE_CEM_RANGES)
    num_actions = spec.num_actions
    uniform = jnp.full((num_actions,), 1.0 / num_actions, jnp.float32)
    propose = _discrete_proposer(proposal, model_fn, spec, horizon, num_proposals)

    def init() -> PlannerState:
        return PlannerState(mean=jnp.broadcast_to(uniform, (horizon, num_actions)))

    def plan(key, state, model_params, obs, hparams=None):
        hp = call_hparams(name, hparams, defaults, DISCRETE_CEM_RANGES)
        key, proposals = propose(key, model_params, obs)
        probs = (1 - hp.uniform_mix) * shift(state.mean, uniform) + hp.uniform_mix * uniform

        def iteration(carry, iter_key):
            probs, best_return, best_plan = carry
            sample_key, eval_key = jax.random.split(iter_key)
            samples = jax.random.categorical(sample_key, jnp.log(probs), -1,
                                             (num_samples, horizon)).astype(jnp.int32)
            samples = insert_proposals(samples, proposals, num_samples - 1)
            samples = samples.at[-1].set(jnp.argmax(probs, -1).astype(jnp.int32))
            returns = evaluate_candidates(model_fn, model_params, eval_key, obs, samples,
                                          hp.discount, num_particles, value_fn)
            i = jnp.argmax(returns)
            better = returns[i] > best_return
            best_return = jnp.where(better, returns[i], best_return)
            best_plan = jnp.where(better, samples[i], best_plan)
            _, idx = jax.lax.top_k(returns, num_elites)
            freqs = jax.nn.one_hot(samples[idx], num_actions, dtype=jnp.float32).mean(0)
            probs = hp.alpha * probs + (1 - hp.alpha) * freqs
            return (probs, best_return, best_plan), None

        init_carry = (probs, jnp.full((), -jnp.inf, jnp.float32),
                      jnp.argmax(probs, -1).astype(jnp.int32))
        (probs, best_return, best_plan), _ = jax.lax.scan(iteration, init_carry,
                                                          jax.random.split(key, num_iters))
        return best_plan[0], PlannerState(mean=probs), PlanInfo(best_return, best_plan)

    return Planner(init, plan, defaults)
