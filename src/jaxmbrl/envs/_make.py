"""The one module that knows gymnax: construction, specs, step/reset adapters.

gymnax (and through it matplotlib and seaborn) is imported on first use only, so that
`import jaxmbrl.envs` stays cheap.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
from typing import Any, Callable, Dict, Hashable, Optional, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl.envs._kwargs import freeze_kwargs
from jaxmbrl.types import Array, PRNGKey, PyTree, Transition

# Environments registered by jaxmbrl itself (e.g. the Dyna Maze) or by users, id ->
# factory returning a gymnax `Environment`. Checked before gymnax's own registry.
_EXTRA_ENVS: Dict[str, Callable[..., Any]] = {}

# `make`'s results by (env_id, kwargs). gymnax jits `Environment.step` with the env
# object as a static argument (hashed by identity), and so do jaxmbrl's own step
# functions: a fresh object per `make` would recompile every jitted function of it.
_MAKE_CACHE: Dict[Hashable, Tuple[Any, Any, "EnvSpec"]] = {}


def register(env_id: str, factory: Callable[..., Any]) -> None:
    """Registers a gymnax-compatible environment under `env_id`, for `make` and the CLI.

    Args:
      env_id: the id `make(env_id, ...)` will accept, e.g. "MyEnv-v0".
      factory: the environment class, or any `(**ctor_kwargs) -> env` callable; it is
        called with no arguments to read the env's default params.
    """
    if not isinstance(env_id, str) or not env_id:
        raise ValueError(f"register takes a non-empty string id, got {env_id!r}.")
    if not callable(factory):
        raise ValueError(f"register({env_id!r}, factory): factory must be an env class or callable, got {factory!r}.")
    if _EXTRA_ENVS.get(env_id) is not factory:
        # Objects made by the previous factory must not be handed out for the new one.
        for key in [k for k in _MAKE_CACHE if k[0] == env_id]:
            del _MAKE_CACHE[key]
    _EXTRA_ENVS[env_id] = factory


def registered_ids() -> Tuple[str, ...]:
    """Every id `make` accepts: gymnax's registry, then jaxmbrl's and `register`'s ids."""
    import gymnax

    return tuple(gymnax.registered_envs) + tuple(k for k in _EXTRA_ENVS if k not in gymnax.registered_envs)


class UnknownEnvError(ValueError):
    """Raised for an environment id that neither gymnax nor jaxmbrl registers."""


@dataclasses.dataclass(frozen=True)
class EnvSpec:
    """Static description of an environment's spaces (hashable: safe to close over).

    Attributes:
      env_id: the id given to `make` (or the name `resolve` gave an env object).
      obs_shape: shape of one observation.
      action_dim: width of the action vector a model sees: the Box dimension for
        continuous actions, `num_actions` (one-hot) for discrete ones.
      discrete: whether actions are integers in `[0, num_actions)`.
      num_actions: number of discrete actions (0 for continuous).
      low, high: per-dimension action bounds (continuous; empty tuples for discrete).
      max_steps: the episode time limit in env steps.
    """

    env_id: str
    obs_shape: Tuple[int, ...]
    action_dim: int
    discrete: bool
    num_actions: int
    low: Tuple[float, ...]
    high: Tuple[float, ...]
    max_steps: int

    @property
    def obs_dim(self) -> int:
        """Flattened observation size O."""
        return int(math.prod(self.obs_shape))

    @property
    def action_shape(self) -> Tuple[int, ...]:
        """Shape of one raw action as the environment takes it."""
        return () if self.discrete else (self.action_dim,)

    @property
    def action_dtype(self):
        return jnp.int32 if self.discrete else jnp.float32


def _split_kwargs(env_cls_params, env_kwargs):
    param_fields = set(getattr(env_cls_params, "__dataclass_fields__", {}))
    params_kw = {k: v for k, v in env_kwargs.items() if k in param_fields}
    ctor_kw = {k: v for k, v in env_kwargs.items() if k not in param_fields}
    return params_kw, ctor_kw


def _make_cache_key(env_id: str, env_kwargs: Dict[str, Any]) -> Optional[Hashable]:
    """(env_id, kwargs) as a hashable key, or None when a value cannot be hashed."""
    try:
        frozen = freeze_kwargs(env_kwargs)
    except ValueError:  # e.g. an array-valued param: build afresh each time
        return None
    # Types too: 1 == 1.0 == True would otherwise share an env whose params differ in dtype.
    return (env_id, tuple((k, type(env_kwargs[k]), v) for k, v in frozen.items()))


def _not_an_id_error(env_id: Any) -> ValueError:
    name = env_id.__name__ if isinstance(env_id, type) else type(env_id).__name__
    return ValueError(
        f"envs.make takes an environment id string, got a {name} object: pass the object "
        f"as make_train(config, env=obj) or env=(obj, params), or register it with "
        f"jaxmbrl.envs.register(\"MyEnv-v0\", {name})."
    )


def make(env_id: str, **env_kwargs) -> Tuple[Any, Any, EnvSpec]:
    """Builds (once) a gymnax environment by id.

    The same id and keyword arguments return the very same `(env, env_params, spec)`
    objects, so functions jitted with the env as a static argument (gymnax's own
    `env.step`, or a closure over it) compile once however often `make` is called.
    Treat the returned objects as immutable.

    Args:
      env_id: a gymnax id (e.g. "Pendulum-v1"), one registered by jaxmbrl ("DynaMaze")
        or by `register`. For an env object that is not registered, use
        `resolve(env_id, env_kwargs, env=obj)` instead.
      **env_kwargs: fields of the env's `EnvParams` (e.g. `max_steps_in_episode=3`) are
        replaced in the params; anything else goes to the environment's constructor.

    Returns:
      `(env, env_params, spec)`.

    Raises:
      UnknownEnvError: `env_id` is not a registered id (the message suggests near ids).
      ValueError: `env_id` is not a string, or a keyword is neither a params field nor a
        constructor argument.
    """
    if not isinstance(env_id, str):
        raise _not_an_id_error(env_id)
    key = _make_cache_key(env_id, env_kwargs)
    if key is not None and key in _MAKE_CACHE:
        return _MAKE_CACHE[key]
    made = _build(env_id, env_kwargs)
    if key is not None:
        _MAKE_CACHE[key] = made
    return made


def _build(env_id: str, env_kwargs: Dict[str, Any]) -> Tuple[Any, Any, EnvSpec]:
    import gymnax

    ids = registered_ids()
    if env_id not in ids:
        near = difflib.get_close_matches(env_id, ids, n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(near)}?" if near else ""
        raise UnknownEnvError(
            f"Unknown environment {env_id!r}.{hint} Valid ids: {', '.join(ids)}."
        )
    if env_id in _EXTRA_ENVS:
        factory = _EXTRA_ENVS[env_id]
        probe = factory()
        params_kw, ctor_kw = _split_kwargs(probe.default_params, env_kwargs)
        try:
            env = factory(**ctor_kw) if ctor_kw else probe
        except TypeError as err:
            raise ValueError(
                f"Bad keyword for {env_id!r}: {err}. Valid parameter fields: "
                f"{', '.join(sorted(getattr(probe.default_params, '__dataclass_fields__', {})))}."
            ) from err
        env_params = env.default_params
    else:
        probe_params = _default_params_of(env_id)
        params_kw, ctor_kw = _split_kwargs(probe_params, env_kwargs)
        try:
            env, env_params = gymnax.make(env_id, **ctor_kw)
        except TypeError as err:
            raise ValueError(
                f"Bad keyword for {env_id!r}: {err}. Valid parameter fields: "
                f"{', '.join(sorted(getattr(probe_params, '__dataclass_fields__', {})))}."
            ) from err
        except OSError as err:  # e.g. MNISTBandit-bsuite downloads its data set
            raise RuntimeError(
                f"Could not build {env_id!r}: it needs data from the network ({err})."
            ) from err
    if params_kw:
        env_params = env_params.replace(**params_kw)
    return env, env_params, spec_of(env, env_params, env_id)


def _default_params_of(env_id: str):
    import gymnax

    try:
        return gymnax.make(env_id)[1]
    except Exception:  # noqa: BLE001 - constructors with side effects; kwargs go to ctor
        return None


def spec_of(env, env_params, env_id: Optional[str] = None) -> EnvSpec:
    """Reads an `EnvSpec` off a gymnax environment."""
    from gymnax.environments import spaces

    action_space = env.action_space(env_params)
    obs_shape = tuple(int(d) for d in env.observation_space(env_params).shape)
    max_steps = int(getattr(env_params, "max_steps_in_episode", 0))
    if isinstance(action_space, spaces.Discrete):
        n = int(action_space.n)
        return EnvSpec(env_id or env.name, obs_shape, n, True, n, (), (), max_steps)
    if isinstance(action_space, spaces.Box):
        shape = tuple(action_space.shape) or (1,)
        dim = int(math.prod(shape))
        low = tuple(float(x) for x in jnp.broadcast_to(jnp.asarray(action_space.low), (dim,)))
        high = tuple(float(x) for x in jnp.broadcast_to(jnp.asarray(action_space.high), (dim,)))
        return EnvSpec(env_id or env.name, obs_shape, dim, False, 0, low, high, max_steps)
    raise TypeError(f"Unsupported action space {type(action_space).__name__} for {env_id}.")


def encode_action(spec: EnvSpec, action: Array) -> Array:
    """Maps a raw action to the float vector [A] a model takes (one-hot if discrete)."""
    if spec.discrete:
        return jax.nn.one_hot(action, spec.num_actions, dtype=jnp.float32)
    return jnp.asarray(action, jnp.float32).reshape(spec.action_dim)


def random_action(key: PRNGKey, spec: EnvSpec) -> Array:
    """One uniformly random action in the env's raw format."""
    if spec.discrete:
        return jax.random.randint(key, (), 0, spec.num_actions, dtype=jnp.int32)
    low, high = jnp.asarray(spec.low, jnp.float32), jnp.asarray(spec.high, jnp.float32)
    return jax.random.uniform(key, (spec.action_dim,), jnp.float32, low, high)


def _strongly_typed(tree: PyTree) -> PyTree:
    """`tree` with every weakly typed leaf cast to a strong array of the same dtype.

    gymnax resets hold Python scalars (CartPole's `time=0`) that become weakly typed
    int32 arrays, while a state restored from a checkpoint or built by a scan is
    strongly typed: jit keys its cache on weak types too, so the two would trace twice.
    """

    def strong(x):
        x = jnp.asarray(x)
        # Tracers and arrays both carry `weak_type` (jax.typeof needs a newer jax).
        return x.astype(x.dtype) if x.weak_type else x

    return jax.tree.map(strong, tree)


def reset(env, env_params, key: PRNGKey) -> Tuple[Array, PyTree]:
    """Unbatched reset: `(obs [*obs_shape], env_state)`, every leaf strongly typed."""
    return _strongly_typed(env.reset(key, env_params))


def step(env, env_params, key: PRNGKey, env_state: PyTree, obs: Array, action: Array):
    """Unbatched auto-resetting step.

    Returns:
      `(transition, obs_to_act_on, env_state)`: `transition.next_obs` is the true
      successor (gymnax's `final_observation`), while `obs_to_act_on` is the reset
      observation when the episode ended. The outputs are strongly typed, like
      `reset`'s, so that stepping a reset state and its successor share one trace.
    """
    next_obs, env_state, reward, terminated, truncated, info = env.step(
        key, env_state, action, env_params
    )
    transition = Transition(
        obs=obs,
        action=action,
        reward=jnp.asarray(reward, jnp.float32),
        next_obs=info["final_observation"],
        terminated=jnp.asarray(terminated, jnp.bool_),
        truncated=jnp.asarray(truncated, jnp.bool_),
    )
    return _strongly_typed((transition, next_obs, env_state))


def batch_reset(env, env_params, key: PRNGKey, num_envs: int):
    """Vectorised reset over `num_envs` envs: obs [B, *obs_shape], state with leading B."""
    return jax.vmap(reset, in_axes=(None, None, 0))(env, env_params, jax.random.split(key, num_envs))


def batch_step(env, env_params, key: PRNGKey, env_state, obs, action):
    """Vectorised `step`; every input and output has a leading B."""
    keys = jax.random.split(key, obs.shape[0])
    return jax.vmap(step, in_axes=(None, None, 0, 0, 0, 0))(env, env_params, keys, env_state, obs, action)


def rollout(env, env_params, spec: EnvSpec, key: PRNGKey, policy: Callable, num_steps: int,
            num_envs: int):
    """Runs `policy(key, obs) -> action` (unbatched) in `num_envs` envs for `num_steps`.

    Returns:
      Transitions with leading [T, B]; a `lax.scan` over time.
    """
    key, reset_key = jax.random.split(key)
    obs, env_state = batch_reset(env, env_params, reset_key, num_envs)

    def body(carry, step_key):
        obs, env_state = carry
        act_key, env_key = jax.random.split(step_key)
        action = jax.vmap(policy)(jax.random.split(act_key, num_envs), obs)
        transition, obs, env_state = batch_step(env, env_params, env_key, env_state, obs, action)
        return (obs, env_state), transition

    _, transitions = jax.lax.scan(body, (obs, env_state), jax.random.split(key, num_steps))
    return transitions


def random_rollout(env, env_params, spec: EnvSpec, key: PRNGKey, num_steps: int, num_envs: int):
    """`rollout` under uniformly random actions: Transitions [T, B]."""
    return rollout(env, env_params, spec, key, lambda k, _: random_action(k, spec), num_steps, num_envs)
