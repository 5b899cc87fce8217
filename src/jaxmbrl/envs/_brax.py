"""Brax's MuJoCo-class tasks behind gymnax's interface, as `brax/<task>` ids.

Brax is an optional extra (`pip install 'jaxmbrl[brax]'`), imported when a `brax/...` id
is first made. The adapter is a gymnax `Environment`, so `make`, `step`, `reset` and every
algorithm take it as they take Pendulum: gymnax's auto-reset keeps the true successor in
`final_observation`, Brax's `done` (a fallen hopper) becomes `terminated`, and the time
limit (`max_steps_in_episode`, 1,000 by default) becomes `truncated`.

Actions are Brax's: a box [-1, 1]^A (Brax scales them to each actuator's range itself).
"""
from __future__ import annotations

import contextlib
import os
import sys
import warnings
from typing import Any, Dict, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl.types import Array, MissingExtraError, PRNGKey

# Brax's MuJoCo-class tasks that jaxmbrl registers as `brax/<task>`.
TASKS = (
    "ant",
    "halfcheetah",
    "hopper",
    "inverted_double_pendulum",
    "inverted_pendulum",
    "reacher",
    "walker2d",
)
# Observation sizes of the default tasks (no constructor arguments; the same on every
# backend), so that listing them (`jaxmbrl envs`) need not trace seven resets (~2 s each on
# a 2-core CPU). tests/test_brax.py checks them against the traced reset.
OBS_SIZES = {"ant": 27, "halfcheetah": 17, "hopper": 11, "inverted_double_pendulum": 8, "inverted_pendulum": 4,
             "reacher": 11, "walker2d": 17}
# Brax's physics pipelines. Per step, one env, halfcheetah on a 2-core CPU: spring 0.3 ms,
# positional 0.9 ms, mjx 1.2 ms, generalized 1.5 ms (docs/BENCHMARKS.md).
BACKENDS = ("generalized", "positional", "spring", "mjx")
DEFAULT_BACKEND = "generalized"  # Brax's own default, the closest to MuJoCo's dynamics
MAX_STEPS = 1000

_INSTALL = "pip install 'jaxmbrl[brax]'"


@contextlib.contextmanager
def _quiet():
    """Silences Brax, MJX and MuJoCo while they load: MJX prints about its optional warp
    backend, MuJoCo's compiler warns from C (file descriptor 2) about deprecated attributes
    of Brax's model files, and Brax warns that it is no longer maintained."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [null]:
            os.close(fd)


def import_brax_envs():
    """`brax.envs`, imported quietly."""
    try:
        with _quiet():
            from brax import envs as brax_envs
    except ImportError as err:
        raise MissingExtraError(f"Brax is not installed ({err}): {_INSTALL} to use brax/... ids.") from None
    return brax_envs


def _float32(x) -> Array:
    # Brax keeps Python floats in its state (inverted_pendulum's reward of 1.0, a hopper's
    # done of 0.0 when it may not fall): strong float32 arrays, so auto-reset can select.
    return jnp.asarray(x, jnp.float32)


def _normalised(brax_state):
    return brax_state.replace(
        reward=_float32(brax_state.reward),
        done=_float32(brax_state.done),
        metrics={k: _float32(v) for k, v in brax_state.metrics.items()},
    )


def _make_classes():
    """Defines the adapter classes on first use, so that gymnax loads only when needed."""
    from flax import struct
    from gymnax.environments import environment, spaces

    @struct.dataclass
    class BraxEnvState(environment.EnvState):
        """Brax's own `State` (physics, obs, reward, done) and the step count `time`."""

        brax_state: Any

    @struct.dataclass
    class BraxEnvParams(environment.EnvParams):
        max_steps_in_episode: int = MAX_STEPS

    class BraxEnv(environment.Environment):
        """A Brax task as a gymnax environment.

        Args:
          task: a Brax environment name, e.g. "hopper" (see `TASKS`).
          backend: Brax's physics pipeline: "generalized" (default), "positional",
            "spring" or "mjx".
          **brax_kwargs: other arguments of the Brax environment's constructor (e.g.
            `terminate_when_unhealthy=False`). With any, the env is named
            `BraxEnv(<task>, ...)` rather than `brax/<task>`, so that jaxmbrl's known
            reward and termination of the default task are not applied to it.
        """

        def __init__(self, task: str, backend: str = DEFAULT_BACKEND, **brax_kwargs):
            super().__init__()
            if backend not in BACKENDS:
                raise ValueError(f"brax/{task}: unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}.")
            brax_envs = import_brax_envs()
            if task not in brax_envs._envs:
                raise ValueError(f"Brax has no task {task!r}; its tasks: {', '.join(sorted(brax_envs._envs))}.")
            with _quiet():
                self.brax_env = brax_envs.get_environment(task, backend=backend, **brax_kwargs)
            self.task, self.backend, self.brax_kwargs = task, backend, dict(brax_kwargs)
            self._obs_shape = None

        @property
        def name(self) -> str:
            if self.brax_kwargs:
                extra = ", ".join(f"{k}={v!r}" for k, v in sorted(self.brax_kwargs.items()))
                return f"BraxEnv({self.task}, {extra})"
            return f"brax/{self.task}"

        @property
        def default_params(self):
            return BraxEnvParams()

        @property
        def dt(self) -> float:
            """Seconds of simulated time per env step (depends on the backend)."""
            return float(self.brax_env.dt)

        def reset_env(self, key: PRNGKey, params) -> Tuple[Array, Any]:
            brax_state = _normalised(self.brax_env.reset(key))
            return brax_state.obs, BraxEnvState(time=jnp.zeros((), jnp.int32), brax_state=brax_state)

        def step_env(self, key: PRNGKey, state, action: Array, params):
            del key  # Brax's dynamics are deterministic
            brax_state = _normalised(self.brax_env.step(state.brax_state, action))
            state = BraxEnvState(time=state.time + 1, brax_state=brax_state)
            terminated = brax_state.done > 0.5
            return brax_state.obs, state, brax_state.reward, terminated, {}

        def is_terminated(self, state, params) -> Array:
            return state.brax_state.done > 0.5

        def action_space(self, params=None):
            return spaces.Box(-1.0, 1.0, (self.brax_env.action_size,), jnp.float32)

        def observation_space(self, params=None):
            if self._obs_shape is None:
                known = None if self.brax_kwargs else OBS_SIZES.get(self.task)
                self._obs_shape = (known,) if known is not None else self.traced_obs_shape()
            return spaces.Box(-jnp.inf, jnp.inf, self._obs_shape, jnp.float32)

        def traced_obs_shape(self) -> Tuple[int, ...]:
            """The observation's shape from a traced reset (Brax's own `observation_size`
            runs an eager reset, op by op: 5-15 s of tiny compilations per task)."""
            reset = jax.eval_shape(self.brax_env.reset, jax.ShapeDtypeStruct((2,), jnp.uint32))
            return tuple(reset.obs.shape)

    return BraxEnv, BraxEnvState, BraxEnvParams


_CLASSES: Dict[str, Any] = {}


def classes():
    """`(BraxEnv, BraxEnvState, BraxEnvParams)`, defined once."""
    if not _CLASSES:
        _CLASSES.update(zip(("BraxEnv", "BraxEnvState", "BraxEnvParams"), _make_classes()))
    return _CLASSES["BraxEnv"], _CLASSES["BraxEnvState"], _CLASSES["BraxEnvParams"]


def factory(task: str):
    """The `register` factory of `brax/<task>`: `(backend=..., **brax_kwargs) -> BraxEnv`."""

    def make_task(**kwargs):
        import_brax_envs()  # the missing extra is the first thing to say
        return classes()[0](task, **kwargs)

    make_task.__name__ = f"brax_{task}"
    return make_task


def default_params():
    """The adapter's params (only the time limit): `BraxEnvParams(max_steps_in_episode=1000)`."""
    return classes()[2]()


# --- known reward and termination -----------------------------------------------------
# Brax computes them from its physics state; these recover them from observations of the
# default tasks (positions of the root in x (and y) excluded, as Brax's defaults).


def _inverted_pendulum_reward(params):
    del params

    def reward_fn(obs, action, next_obs):
        # Brax pays 1 on every step, the terminating one included.
        del obs, action, next_obs
        return jnp.ones((), jnp.float32)

    return reward_fn


def _inverted_pendulum_termination(params):
    del params

    def termination_fn(obs, action, next_obs):
        # obs = (cart x, pole angle, velocities): the pole has fallen past 0.2 rad.
        del obs, action
        return jnp.abs(next_obs[1]) > 0.2

    return termination_fn


def _reacher_reward(params):
    del params

    def reward_fn(obs, action, next_obs):
        # The last three entries of an observation are the fingertip-to-target vector.
        del obs
        distance = jnp.sqrt(jnp.sum(jnp.square(next_obs[-3:])))
        return (-distance - jnp.sum(jnp.square(action))).astype(jnp.float32)

    return reward_fn


def _hopper_termination(params):
    del params

    def termination_fn(obs, action, next_obs):
        # obs = (torso z, torso angle, 3 joint angles, 6 velocities clipped to +-10).
        # Brax also ends an episode whose unclipped velocity leaves (-100, 100); the clip
        # hides that, so such a rare step is missed here.
        del obs, action
        z, angle, state = next_obs[0], next_obs[1], next_obs[1:]
        healthy = (z > 0.7) & (jnp.abs(angle) < 0.2) & jnp.all(jnp.abs(state) < 100.0)
        return jnp.logical_not(healthy)

    return termination_fn


def _double_pendulum_tip(obs):
    # obs = (cart x, sin a1, sin a2, cos a1, cos a2, 3 velocities clipped to +-10); each
    # pole is 0.6 long and the tip is (x, height) in the plane of the cart's rail.
    sin1, sin2, cos1, cos2 = obs[1], obs[2], obs[3], obs[4]
    sin12 = sin1 * cos2 + cos1 * sin2
    cos12 = cos1 * cos2 - sin1 * sin2
    return obs[0] + 0.6 * (sin1 + sin12), 0.6 * (cos1 + cos12)


def _inverted_double_pendulum_reward(params):
    del params

    def reward_fn(obs, action, next_obs):
        # Brax charges the unclipped joint velocities; the observation's clip at 10 makes
        # this differ from it on the rare step faster than that.
        del obs, action
        x, y = _double_pendulum_tip(next_obs)
        alive = jnp.where(y <= 1.0, 0.0, 10.0)
        penalty = 0.01 * x**2 + (y - 2.0) ** 2 + 1e-3 * next_obs[6] ** 2 + 5e-3 * next_obs[7] ** 2
        return (alive - penalty).astype(jnp.float32)

    return reward_fn


def _inverted_double_pendulum_termination(params):
    del params

    def termination_fn(obs, action, next_obs):
        del obs, action
        return _double_pendulum_tip(next_obs)[1] <= 1.0

    return termination_fn


def _walker2d_termination(params):
    del params

    def termination_fn(obs, action, next_obs):
        # obs = (torso z, torso angle, 6 joint angles, 9 velocities).
        del obs, action
        z, angle = next_obs[0], next_obs[1]
        healthy = (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)
        return jnp.logical_not(healthy)

    return termination_fn


def _ant_termination(params):
    del params

    def termination_fn(obs, action, next_obs):
        # obs = (torso z, orientation quaternion, 8 joint angles, velocities).
        del obs, action
        z = next_obs[0]
        return (z < 0.2) | (z > 1.0)

    return termination_fn


# task -> (reward or None (learned), termination or None (never terminates)).
KNOWN = {
    "inverted_pendulum": (_inverted_pendulum_reward, _inverted_pendulum_termination),
    "inverted_double_pendulum": (_inverted_double_pendulum_reward, _inverted_double_pendulum_termination),
    "reacher": (_reacher_reward, None),
    "hopper": (None, _hopper_termination),
    "walker2d": (None, _walker2d_termination),
    "ant": (None, _ant_termination),
    "halfcheetah": (None, None),
}


__all__ = ["BACKENDS", "DEFAULT_BACKEND", "KNOWN", "MAX_STEPS", "MissingExtraError", "TASKS", "classes",
           "default_params", "factory", "import_brax_envs"]
