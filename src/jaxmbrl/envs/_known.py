"""Known reward and termination functions of gymnax's classic-control environments.

Each function re-derives gymnax's reward / terminal condition from observations alone,
so that a learned dynamics model (which predicts observations) can be scored with the
true reward. They are unbatched: `(obs, action, next_obs) -> scalar`; vmap them.

Actions are in the environment's raw format: float [A] (continuous) or an int32 scalar
(discrete).
"""
from __future__ import annotations

import difflib
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import jax.numpy as jnp

from jaxmbrl.types import Array, RewardFn, TerminationFn


class _KnownFns(NamedTuple):
    default_params: Callable[[], Any]
    reward: Optional[Callable[[Any], RewardFn]]  # None: not a function of observations
    termination: Callable[[Any], TerminationFn]


def never_terminates(obs: Array, action: Array, next_obs: Array) -> Array:
    """The termination function of an env without terminal states: [] bool False.

    The fallback when `known_termination` knows none (a time limit is `truncated`).
    """
    del obs, action, next_obs
    return jnp.zeros((), jnp.bool_)


def _never_terminates(params) -> TerminationFn:
    del params
    return never_terminates


# --- Pendulum-v1 -----------------------------------------------------------------------
# obs = (cos theta, sin theta, theta_dot). gymnax scores the state *before* the step.


def _pendulum_reward(params) -> RewardFn:
    def reward_fn(obs, action, next_obs):
        del next_obs
        # atan2 recovers the normalised angle in [-pi, pi], as gymnax's angle_normalize.
        theta = jnp.arctan2(obs[1], obs[0])
        u = jnp.clip(action, -params.max_torque, params.max_torque)
        cost = theta**2 + 0.1 * obs[2] ** 2 + 0.001 * jnp.sum(u**2)
        return jnp.asarray(-cost, jnp.float32)

    return reward_fn


# --- CartPole-v1 -----------------------------------------------------------------------
# obs = (x, x_dot, theta, theta_dot).


def _cartpole_is_terminal(params, obs):
    out_x = jnp.abs(obs[0]) > params.x_threshold
    out_theta = jnp.abs(obs[2]) > params.theta_threshold_radians
    return jnp.logical_or(out_x, out_theta)


def _cartpole_reward(params) -> RewardFn:
    def reward_fn(obs, action, next_obs):
        del action, next_obs
        # gymnax pays 1 unless the state *before* the step is already terminal.
        return jnp.where(_cartpole_is_terminal(params, obs), 0.0, 1.0).astype(jnp.float32)

    return reward_fn


def _cartpole_termination(params) -> TerminationFn:
    def termination_fn(obs, action, next_obs):
        del obs, action
        return _cartpole_is_terminal(params, next_obs)

    return termination_fn


# --- MountainCarContinuous-v0 / MountainCar-v0 -----------------------------------------
# obs = (position, velocity).


def _car_at_goal(params, obs):
    return jnp.logical_and(obs[0] >= params.goal_position, obs[1] >= params.goal_velocity)


def _mountain_car_continuous_reward(params) -> RewardFn:
    def reward_fn(obs, action, next_obs):
        del obs
        # gymnax charges the unclipped action.
        action_cost = 0.1 * jnp.sum(jnp.square(action))
        bonus = jnp.where(_car_at_goal(params, next_obs), 100.0, 0.0)
        return jnp.asarray(bonus - action_cost, jnp.float32)

    return reward_fn


def _mountain_car_reward(params) -> RewardFn:
    del params

    def reward_fn(obs, action, next_obs):
        del obs, action, next_obs
        return jnp.full((), -1.0, jnp.float32)

    return reward_fn


def _mountain_car_termination(params) -> TerminationFn:
    def termination_fn(obs, action, next_obs):
        del obs, action
        return _car_at_goal(params, next_obs)

    return termination_fn


# --- Acrobot-v1 ------------------------------------------------------------------------
# obs = (cos t1, sin t1, cos t2, sin t2, dt1, dt2); the goal is the tip above the bar:
# -cos(t1) - cos(t1 + t2) > 1.


def _acrobot_is_terminal(obs):
    cos_t1, sin_t1, cos_t2, sin_t2 = obs[0], obs[1], obs[2], obs[3]
    cos_t1_t2 = cos_t1 * cos_t2 - sin_t1 * sin_t2
    return -cos_t1 - cos_t1_t2 > 1.0


def _acrobot_reward(params) -> RewardFn:
    del params

    def reward_fn(obs, action, next_obs):
        del obs, action
        return jnp.where(_acrobot_is_terminal(next_obs), 0.0, -1.0).astype(jnp.float32)

    return reward_fn


def _acrobot_termination(params) -> TerminationFn:
    del params

    def termination_fn(obs, action, next_obs):
        del obs, action
        return _acrobot_is_terminal(next_obs)

    return termination_fn


def _gymnax_default_params(module: str) -> Callable[[], Any]:
    def default_params():
        import importlib

        return importlib.import_module(f"gymnax.environments.classic_control.{module}").EnvParams()

    return default_params


_KNOWN: Dict[str, _KnownFns] = {
    "Pendulum-v1": _KnownFns(_gymnax_default_params("pendulum"), _pendulum_reward, _never_terminates),
    "CartPole-v1": _KnownFns(_gymnax_default_params("cartpole"), _cartpole_reward, _cartpole_termination),
    "MountainCarContinuous-v0": _KnownFns(
        _gymnax_default_params("continuous_mountain_car"),
        _mountain_car_continuous_reward,
        _mountain_car_termination,
    ),
    "MountainCar-v0": _KnownFns(
        _gymnax_default_params("mountain_car"), _mountain_car_reward, _mountain_car_termination
    ),
    "Acrobot-v1": _KnownFns(_gymnax_default_params("acrobot"), _acrobot_reward, _acrobot_termination),
}


def register_known(
    env_id: str,
    default_params: Callable[[], Any],
    reward: Optional[Callable[[Any], RewardFn]],
    termination: Optional[Callable[[Any], TerminationFn]] = None,
) -> None:
    """Registers the reward / termination functions of an environment.

    Args:
      env_id: the id `make` accepts for the environment.
      default_params: `() -> env_params` used when the caller passes none.
      reward: `env_params -> reward_fn`; None when the reward is not a function of
        `(obs, action, next_obs)` (e.g. Brax's forward reward, which reads the root's x
        position that observations exclude): algorithms then learn it.
      termination: `env_params -> termination_fn`; None for an env that never terminates.
    """
    _KNOWN[env_id] = _KnownFns(default_params, reward, termination or _never_terminates)


def known_ids() -> Tuple[str, ...]:
    """Ids that `termination_fn` accepts; `reward_fn` accepts those of them whose
    `known_reward` is not None."""
    return tuple(_KNOWN)


def _lookup(env_id: str) -> _KnownFns:
    if env_id not in _KNOWN:
        ids = known_ids()
        near = difflib.get_close_matches(env_id, ids, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        raise ValueError(
            f"No known reward/termination function for {env_id!r}.{hint} "
            f"Known ids: {', '.join(ids)}."
        )
    return _KNOWN[env_id]


def reward_fn(env_id: str, env_params=None) -> RewardFn:
    """The true reward of `env_id` as `(obs, action, next_obs) -> reward`.

    Args:
      env_id: e.g. "Pendulum-v1"; see `known_ids()`.
      env_params: the env's `EnvParams` (constants such as thresholds); gymnax's
        defaults when None.

    Returns:
      An unbatched function: obs [*obs_shape], action [A] float or [] int32,
      next_obs [*obs_shape] -> reward [] float32.
    """
    known = _lookup(env_id)
    if known.reward is None:
        raise ValueError(
            f"The reward of {env_id!r} is not a function of (obs, action, next_obs), so jaxmbrl "
            f"knows none (MBPO and Dreamer learn it)."
        )
    return known.reward(known.default_params() if env_params is None else env_params)


def termination_fn(env_id: str, env_params=None) -> TerminationFn:
    """The true terminal condition of `env_id` as `(obs, action, next_obs) -> bool`.

    Time limits are not terminations: they are the env's `truncated` flag. Envs without a
    natural terminal state (Pendulum) get a function that always returns False.

    Returns:
      An unbatched function: obs [*obs_shape], action, next_obs [*obs_shape] -> [] bool.
    """
    known = _lookup(env_id)
    return known.termination(known.default_params() if env_params is None else env_params)


def known_reward(env_id: Any, env_params=None) -> Optional[RewardFn]:
    """`reward_fn(env_id, env_params)`, or None when jaxmbrl knows no reward for `env_id`."""
    if not isinstance(env_id, str) or env_id not in _KNOWN or _KNOWN[env_id].reward is None:
        return None
    return reward_fn(env_id, env_params)


def known_termination(env_id: Any, env_params=None) -> Optional[TerminationFn]:
    """`termination_fn(env_id, env_params)`, or None when jaxmbrl knows none for `env_id`.

    Callers that must terminate somehow write
    `known_termination(env_id, params) or never_terminates`.
    """
    if not isinstance(env_id, str) or env_id not in _KNOWN:
        return None
    return termination_fn(env_id, env_params)
