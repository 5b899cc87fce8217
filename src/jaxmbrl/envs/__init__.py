"""Environments: gymnax and Brax construction, specs, adapters, known reward/termination.

An algorithm gets its environment from `resolve(env_id, env_kwargs, env)`: a
registered id (`make`, cached), an unregistered env object or an `(env, params)` pair.
gymnax is imported on first use (a `make`, a spec), not by `import jaxmbrl.envs`; Brax
(the `brax` extra) on the first `make("brax/...")`.
"""
from jaxmbrl.envs._known import (
    known_ids,
    known_reward,
    known_termination,
    never_terminates,
    register_known,
    reward_fn,
    termination_fn,
)
from jaxmbrl.envs import _brax
from jaxmbrl.envs._brax import MissingExtraError
from jaxmbrl.envs._kwargs import freeze_kwargs
from jaxmbrl.envs._make import (
    EnvSpec,
    UnknownEnvError,
    batch_reset,
    batch_step,
    encode_action,
    make,
    random_action,
    random_rollout,
    register,
    registered_ids,
    reset,
    rollout,
    spec_of,
    step,
)
from jaxmbrl.envs._resolve import example_transition, resolve, true_model

# Subclasses of gymnax's Environment: loaded when first asked for, not at import.
_LAZY = {"DynaMaze": "jaxmbrl.envs._dyna_maze"}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


def _dyna_maze(**kwargs):
    """`DynaMaze(**kwargs)`, importing it (and gymnax) on the first `make("DynaMaze")`."""
    from jaxmbrl.envs._dyna_maze import DynaMaze

    return DynaMaze(**kwargs)


def _blocking_maze(**kwargs):
    from jaxmbrl.envs._changing_maze import BlockingMaze

    return BlockingMaze(**kwargs)


def _shortcut_maze(**kwargs):
    from jaxmbrl.envs._changing_maze import ShortcutMaze

    return ShortcutMaze(**kwargs)


def _point_mass(**kwargs):
    """The `jaxmbrl.testing` fixture env, reachable by id (CLI) without importing gymnax."""
    from jaxmbrl.testing._point_mass import PointMass

    return PointMass(**kwargs)


def _point_mass_params():
    from jaxmbrl.testing._point_mass import EnvParams

    return EnvParams()


def _point_mass_reward(params):
    from jaxmbrl.testing._point_mass import make_point_mass_reward_fn

    return make_point_mass_reward_fn(params)


register("DynaMaze", _dyna_maze)
register("BlockingMaze", _blocking_maze)
register("ShortcutMaze", _shortcut_maze)
# `jaxmbrl.testing` registers the same env again (eagerly) when imported.
register("PointMass-jaxmbrl", _point_mass)
register_known("PointMass-jaxmbrl", _point_mass_params, _point_mass_reward)

# Brax's MuJoCo-class tasks; each id's factory imports Brax, or says which extra to install.
for _task in _brax.TASKS:
    register(f"brax/{_task}", _brax.factory(_task))
    _reward, _termination = _brax.KNOWN[_task]
    register_known(f"brax/{_task}", _brax.default_params, _reward, _termination)
del _task, _reward, _termination


def brax_env(task: str, backend: str = _brax.DEFAULT_BACKEND, **brax_kwargs):
    """A Brax task as a gymnax environment (`BraxEnv`), for `env=` or `register`.

    `make("brax/hopper", backend="spring")` builds the same thing by id; use this for
    Brax constructor arguments other than `backend` (the env is then named
    `BraxEnv(hopper, ...)`, and jaxmbrl's known functions of the default task do not
    apply to it: pass `termination_fn=` where the algorithm takes one).

    Raises:
      MissingExtraError: Brax is not installed (`pip install 'jaxmbrl[brax]'`).
    """
    return _brax.factory(task)(backend=backend, **brax_kwargs)

__all__ = [
    "DynaMaze",
    "MissingExtraError",
    "brax_env",
    "EnvSpec",
    "UnknownEnvError",
    "batch_reset",
    "batch_step",
    "encode_action",
    "example_transition",
    "freeze_kwargs",
    "known_ids",
    "known_reward",
    "known_termination",
    "make",
    "never_terminates",
    "random_action",
    "random_rollout",
    "register",
    "register_known",
    "registered_ids",
    "reset",
    "resolve",
    "reward_fn",
    "rollout",
    "spec_of",
    "step",
    "termination_fn",
    "true_model",
]
