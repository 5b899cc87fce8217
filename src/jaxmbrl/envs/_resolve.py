"""What an algorithm is given, turned into `(env, env_params, spec)`: an id or an object.

`resolve` is the one entry point the algorithms call, so that a registered id, an
unregistered env object and an `(env, params)` pair all go in the same way.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Tuple

import jax.numpy as jnp

from jaxmbrl.envs._kwargs import kwargs_items
from jaxmbrl.envs._make import EnvSpec, make, spec_of
from jaxmbrl.types import Array, ModelFn, Transition

# What `spec_of`, `reset` and `step` call on an environment.
_REQUIRED = ("step", "reset", "action_space", "observation_space")


def _env_name(env: Any) -> str:
    """The env's `name` property (gymnax's default is the class name), else its class name."""
    try:
        name = env.name
    except Exception:  # noqa: BLE001 - a broken or missing property: fall back
        name = None
    return name if isinstance(name, str) and name else type(env).__name__


def _check_env(env: Any) -> None:
    if isinstance(env, str):
        raise ValueError(f"env= takes an env object or (env, params), got the string {env!r}: give an id as env_id.")
    missing = [m for m in _REQUIRED if not callable(getattr(env, m, None))]
    if missing:
        raise ValueError(
            f"{type(env).__name__} is not a gymnax-style environment: it has no "
            f"{', '.join(missing)} (expected step, reset, action_space, observation_space)."
        )


def _unpack(env: Any) -> Tuple[Any, Any]:
    """`env`, `(env, params)` or `make`'s `(env, params, spec)` -> `(env, params)`."""
    if isinstance(env, (tuple, list)):
        if len(env) == 2 or (len(env) == 3 and isinstance(env[2], EnvSpec)):
            obj, params = env[0], env[1]
            _check_env(obj)
            return obj, params
        raise ValueError(f"env= takes an env object or an (env, params) pair, got a {len(env)}-tuple.")
    _check_env(env)
    try:
        return env, env.default_params
    except AttributeError:
        raise ValueError(
            f"{type(env).__name__} has no default_params: pass env=(env, params)."
        ) from None


def _param_fields(params: Any) -> Tuple[str, ...]:
    if dataclasses.is_dataclass(params):
        return tuple(f.name for f in dataclasses.fields(params))
    return tuple(getattr(params, "_fields", ()))  # a NamedTuple, or no fields at all


def _replace_params(params: Any, env_kwargs: Dict[str, Any], name: str) -> Any:
    """`params` with the fields named in `env_kwargs` replaced; unknown names raise."""
    if not env_kwargs:
        return params
    fields = _param_fields(params)
    unknown = sorted(k for k in env_kwargs if k not in fields)
    if unknown:
        raise ValueError(
            f"env_kwargs {', '.join(unknown)} are not fields of {name}'s {type(params).__name__}; "
            f"valid fields: {', '.join(fields) or 'none'} (constructor arguments need a registered id)."
        )
    if dataclasses.is_dataclass(params):
        return dataclasses.replace(params, **env_kwargs)
    return params._replace(**env_kwargs)


def resolve(env_id: Optional[str], env_kwargs: Any = None, env: Any = None) -> Tuple[Any, Any, EnvSpec]:
    """The environment an algorithm runs in, from an id or from an env object.

    Args:
      env_id: a registered id (see `registered_ids`). With `env` given it only names
        the env in the spec (and so in config.json and logs); None or "" takes the
        env's `name` property, else its class name.
      env_kwargs: a dict, FrozenDict, `(name, value)` pairs or None. With an id, as
        `make(env_id, **env_kwargs)`; with `env`, replacements of its params' fields.
      env: None (build `env_id` with `make`), a gymnax-style env object (its
        `default_params` are used) or an `(env, params)` pair (`make`'s triple works
        too).

    Returns:
      `(env, env_params, spec)`.

    Raises:
      ValueError: an env object lacks `step`, `reset`, `action_space` or
        `observation_space`, or an env_kwargs name is not a field of its params.
      UnknownEnvError: `env_id` is not registered (with `env=None`).
    """
    kwargs = dict(kwargs_items(env_kwargs))
    if env is None:
        if env_id is None or env_id == "":
            raise ValueError("resolve needs an env_id or an env object (env=obj or env=(obj, params)).")
        return make(env_id, **kwargs)
    obj, params = _unpack(env)
    name = env_id if isinstance(env_id, str) and env_id else _env_name(obj)
    params = _replace_params(params, kwargs, name)
    return obj, params, spec_of(obj, params, name)


def true_model(env_or_id: Any, env_params: Any = None, **env_kwargs) -> Tuple[ModelFn, Any]:
    """The true dynamics as a `model_fn` over the env *state*, for oracle tests.

    Args:
      env_or_id: a registered id, an env object or an `(env, params)` pair.
      env_params: params to start from instead of the env's (or the pair's).
      **env_kwargs: as for `make` with an id (params fields or constructor arguments);
        with an object, replacements of params fields only.

    Returns:
      `(model_fn, env_params)`. `model_fn(key, params, env_state, action)` returns
      `(next_env_state, reward [] float32, terminated [] bool)` from the env's
      `step_env` (no auto-reset); pass `env_params` (or a modified copy) as `params`.
    """
    if isinstance(env_or_id, str):
        env, made_params, _ = make(env_or_id, **env_kwargs)
        if env_params is None:
            env_params = made_params
        else:
            fields = set(_param_fields(made_params))
            params_kw = {k: v for k, v in env_kwargs.items() if k in fields}
            env_params = _replace_params(env_params, params_kw, env_or_id)
    else:
        env, params = _unpack(env_or_id)
        name = _env_name(env)
        env_params = _replace_params(params if env_params is None else env_params, env_kwargs, name)
    if not callable(getattr(env, "step_env", None)):
        raise ValueError(f"{type(env).__name__} has no step_env, which the true model steps without auto-reset.")

    def model_fn(key, params, env_state, action):
        _, next_state, reward, terminated, _ = env.step_env(key, env_state, action, params)
        return next_state, jnp.asarray(reward, jnp.float32), jnp.asarray(terminated, jnp.bool_)

    return model_fn, env_params


def example_transition(spec: EnvSpec, obs: Optional[Array] = None) -> Transition:
    """One all-zero `Transition` with the env's shapes and dtypes, e.g. to init a buffer.

    Args:
      spec: the env's spec.
      obs: an example observation (e.g. from `reset`, or a `jax.ShapeDtypeStruct`)
        whose dtype the zeros take; float32 when None. Its shape must be
        `spec.obs_shape`.

    Returns:
      Transition of zeros: obs, next_obs [*obs_shape]; action [] int32 (discrete) or
      [A] float32 (continuous); reward [] float32; terminated, truncated [] bool.
    """
    if obs is None:
        shape, dtype = spec.obs_shape, jnp.float32
    else:
        obs = obs if hasattr(obs, "shape") and hasattr(obs, "dtype") else jnp.asarray(obs)
        shape, dtype = tuple(obs.shape), obs.dtype
        if shape != spec.obs_shape:
            raise ValueError(
                f"example_transition: obs has shape {shape}, but {spec.env_id}'s observations "
                f"are {spec.obs_shape} (give one unbatched observation)."
            )
    zeros_obs = jnp.zeros(shape, dtype)
    return Transition(
        obs=zeros_obs,
        action=jnp.zeros(spec.action_shape, spec.action_dtype),
        reward=jnp.zeros((), jnp.float32),
        next_obs=zeros_obs,
        terminated=jnp.zeros((), jnp.bool_),
        truncated=jnp.zeros((), jnp.bool_),
    )
