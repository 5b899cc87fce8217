"""The contract every algorithm keeps, and the helpers they share.

An algorithm is a module with:

  * `Config`: a frozen dataclass of static fields (shapes, counts, names: changing one
    compiles a new program). It mixes in `ConfigBase`, so it has `tiny()` (seconds-scale
    settings for tests), `hparams()` (default `HParams`), `validate()` (static checks,
    one-line `ValueError`s) and `validate_hparams(hp)` (range checks of concrete floats).
  * `HParams`: a NamedTuple of float scalars passed as a traced argument, so that
    `jax.vmap(train.run)(keys, hparams)` sweeps them in one program.
  * `State` (a NamedTuple pytree with an int32 `env_steps` and `iteration`),
    `Metrics` (a NamedTuple of scalars with at least `iteration`, `env_steps` and
    `episode_return`; NaN where nothing was measured this iteration) and
    `make_train(config, *, env=None, ...) -> Train`.
  * `supports(spec) -> str | None`: `None` if the algorithm cannot run in an env of
    that `EnvSpec`, else a note for `jaxmbrl envs` ("" when nothing needs saying).

A `Train` has `config`, `init(key, hparams) -> State`, `step(State) -> (State,
Metrics)` (one iteration) and `run(key, hparams) -> (State, Metrics[num_iterations])`,
and `policy(State, n) -> (act, policy_state)`: the greedy controller that a state's
evaluation uses, for n envs, in `evaluate`'s shape (`jaxmbrl render` replays it).
Algorithms whose first iterations are a warm-up run them inside `init` and keep their
metrics in `State.warmup` ([warmup_iterations]); `run` puts them first.

The protocols below write this down for type checkers and readers; the runner relies
only on these names. The shared names of fields are in docs/ARCHITECTURE.md.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Dict, Mapping, NamedTuple, Optional, Protocol, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl.types import Array, PRNGKey, Range, check_ranges

INF = float("inf")

# Old field names and the ones that replaced them, so that a config written for an
# earlier version gets an error that names the new field.
RENAMED = {
    "random_iterations": "warmup_iterations",
    "exploration_iterations": "warmup_iterations",
    "learning_starts": "warmup_steps",
    "model_period": "model_train_every",
    "train_every": "model_train_every",
    "eval_episodes": "num_eval_episodes",
    "buffer_size": "buffer_capacity",
    "tau": "target_tau",
    "slow_critic_tau": "target_tau",
    "hidden_sizes": "model_hidden_sizes (dynamics model) or policy_hidden_sizes (agent)",
    "sac_hidden_sizes": "policy_hidden_sizes",
    "actor_hidden_sizes": "policy_hidden_sizes",
    "sac_batch_size": "policy_batch_size",
    "batch_size": "policy_batch_size (agent) or model_batch_size (model)",
    "sac_updates_per_step": "policy_updates_per_step",
    "updates_per_step": "policy_updates_per_step",
    "horizon": "planner_horizon",
    "num_samples": "planner_samples",
    "num_elites": "planner_elites",
    "num_particles": "planner_particles",
    "mppi_temperature": "planner_temperature",
}


class AlgorithmConfig(Protocol):
    env_id: str
    env_kwargs: Mapping[str, Any]
    num_iterations: int

    @classmethod
    def tiny(cls, **overrides) -> "AlgorithmConfig": ...

    def hparams(self) -> Any: ...

    def validate(self) -> None: ...

    def validate_hparams(self, hparams: Any) -> None: ...


class AlgorithmState(Protocol):
    env_steps: Array
    iteration: Array


class AlgorithmMetrics(Protocol):
    iteration: Array
    env_steps: Array
    episode_return: Array


class AlgorithmTrain(Protocol):
    config: Any
    init: Callable[[PRNGKey, Any], Any]
    step: Callable[[Any], Tuple[Any, Any]]
    run: Callable[[PRNGKey, Any], Tuple[Any, Any]]
    policy: Callable[[Any, int], Tuple[Callable, Any]]


class ConfigBase:
    """What every algorithm's `Config` shares (mixed into a frozen dataclass).

    Subclasses set `NAME` (the registry name), `HPARAMS` (their HParams class) and
    `HPARAM_RANGES` (field -> `Range`), and define `_validate()` for their own checks.
    """

    NAME: ClassVar[str] = "algorithm"
    HPARAMS: ClassVar[type] = tuple
    HPARAM_RANGES: ClassVar[Dict[str, Range]] = {}

    def __post_init__(self):
        if hasattr(self, "env_kwargs"):
            from jaxmbrl import envs

            try:
                frozen = envs.freeze_kwargs(self.env_kwargs)
            except ValueError as err:
                raise ValueError(f"{self.NAME}.Config.env_kwargs: {err}") from None
            object.__setattr__(self, "env_kwargs", frozen)

    def hparams(self):
        """The default `HParams` of this config."""
        return self.HPARAMS()

    def validate(self) -> None:
        """Static checks; raises a one-line `ValueError` naming the field and the fix."""
        if not isinstance(getattr(self, "env_id", ""), str):
            raise ValueError(
                f"{self.NAME}.Config.env_id must be a registered id string, got a "
                f"{type(self.env_id).__name__} object; pass the object as make_train(config, env=obj) "
                f"(or env=(obj, params)), or register it with jaxmbrl.envs.register('MyEnv-v0', MyEnv)."
            )
        self._validate()

    def _validate(self) -> None:
        pass

    def validate_hparams(self, hparams) -> None:
        """Range check of every concrete float in `hparams` (a point or a batch of them).

        Raises a one-line `ValueError` naming the field and its range; traced values
        are not checked.
        """
        check_ranges(f"{self.NAME}.HParams", hparams, self.HPARAM_RANGES)

    # -- checks shared by the subclasses' `_validate` --------------------------------------

    def _ints(self, minimum: int, *names: str) -> None:
        for name in names:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{self.NAME}.Config.{name} must be an integer >= {minimum}, got {value!r}.")

    def _widths(self, *names: str) -> None:
        for name in names:
            sizes = getattr(self, name)
            if not sizes or any(not isinstance(h, int) or h < 1 for h in sizes):
                raise ValueError(f"{self.NAME}.Config.{name} must be positive integer widths, got {sizes!r}.")

    def _choice(self, name: str, choices) -> None:
        value = getattr(self, name)
        if value not in choices:
            raise ValueError(f"{self.NAME}.Config.{name}={value!r} is unknown; choose one of {tuple(choices)}.")

    def _at_most(self, name: str, bound_name: str) -> None:
        value, bound = getattr(self, name), getattr(self, bound_name)
        if value > bound:
            raise ValueError(f"{self.NAME}.Config.{name}={value} exceeds {bound_name}={bound}.")

    def _divides(self, name: str, of: str) -> None:
        value, total = getattr(self, name), getattr(self, of)
        if total % value:
            raise ValueError(
                f"{self.NAME}.Config.{name}={value} must divide {of}={total}; e.g. set {name}={total}."
            )


def check_bonus_unused(cfg, hp, switch: str) -> None:
    """With `cfg.exploration == "none"`, concrete nonzero `intrinsic_reward(_end)` are an
    error (one line naming `switch`, the exploration value that reads them)."""
    if cfg.exploration != "none":
        return
    import numpy as np

    for name in ("intrinsic_reward", "intrinsic_reward_end"):
        value = getattr(hp, name)
        if not isinstance(value, jax.core.Tracer) and np.any(np.asarray(value, np.float64) != 0):
            raise ValueError(f"{cfg.NAME}: {name}={value} is only used with exploration={switch!r}; "
                             f"set {cfg.NAME}.Config(exploration={switch!r}) or {name}=0")


def as_float32(hparams):
    """The same HParams with every field a float32 array (strongly typed: no recompiles)."""
    return type(hparams)(*(jnp.asarray(h, jnp.float32) for h in hparams))


# --- ranges shared by several algorithms ------------------------------------------------

POSITIVE = Range(0.0, INF, low_open=True)
NON_NEGATIVE = Range(0.0, INF)
UNIT = Range(0.0, 1.0)  # [0, 1]
HALF_OPEN_UNIT = Range(0.0, 1.0, high_open=True)  # [0, 1)
RATE = Range(0.0, 1.0, low_open=True)  # (0, 1]: Polyak rates

MODEL_RANGES = {
    "model_learning_rate": POSITIVE,
    "model_weight_decay": NON_NEGATIVE,
    "holdout_ratio": HALF_OPEN_UNIT,
}


def planner_ranges() -> Dict[str, Range]:
    """`planner_<field>` -> Range for every float a registered planner takes (not discount)."""
    from jaxmbrl import planning

    return {f"planner_{name}": rng for name, (_, rng) in planning.planner_float_fields().items()
            if name != "discount"}


def planner_hparams(name: str, hp):
    """The planner `name`'s own HParams from an algorithm's `planner_*` fields and `discount`."""
    from jaxmbrl import planning

    values = {field[len("planner_"):]: value for field, value in hp._asdict().items()
              if field.startswith("planner_")}
    values["discount"] = hp.discount
    return planning.planner_hparams(name, values)


# --- environments ---------------------------------------------------------------------------


def resolve_env(config, env=None):
    """`(env, env_params, spec)` for `config.env_id` / `config.env_kwargs`, or for `env`
    (an env object or `(env, params)`) when the user brings one that is not registered."""
    from jaxmbrl import envs

    env_id = config.env_id if isinstance(config.env_id, str) else ""
    return envs.resolve(env_id, dict(config.env_kwargs), env=env)


def termination_or_never(env_id: str, termination_fn=None):
    """`termination_fn`, else the known one of `env_id`, else one that never terminates."""
    from jaxmbrl import envs

    if termination_fn is not None:
        return termination_fn
    known = envs.known_termination(env_id)
    return known if known is not None else envs.never_terminates


# --- evaluation -----------------------------------------------------------------------------


def evaluate(env, env_params, key: PRNGKey, act: Callable, policy_state: Any, num_episodes: int,
             max_steps: int) -> Array:
    """Mean return of the first episode in each of `num_episodes` fresh envs.

    `act(key, obs [n, ...], policy_state, is_first [n]) -> (action [n, ...], policy_state)`
    is the greedy controller (stateless ones pass `policy_state=None` through). Every
    env runs `max_steps` steps (a lax.scan); rewards after an episode's end are masked.

    Returns:
      [] float32.
    """
    from jaxmbrl import envs

    k_reset, k_scan = jax.random.split(key)
    obs, env_state = envs.batch_reset(env, env_params, k_reset, num_episodes)

    def body(carry, k):
        obs, env_state, policy_state, is_first, ret, alive = carry
        k_act, k_env = jax.random.split(k)
        action, policy_state = act(k_act, obs, policy_state, is_first)
        transition, obs, env_state = envs.batch_step(env, env_params, k_env, env_state, obs, action)
        ret = ret + jnp.where(alive, transition.reward, 0.0)
        done = transition.terminated | transition.truncated
        return (obs, env_state, policy_state, done, ret, alive & ~done), None

    carry = (obs, env_state, policy_state, jnp.ones((num_episodes,), jnp.bool_),
             jnp.zeros((num_episodes,), jnp.float32), jnp.ones((num_episodes,), jnp.bool_))
    carry, _ = jax.lax.scan(body, carry, jax.random.split(k_scan, max_steps))
    return carry[4].mean()


def reset_where(is_first: Array, fresh: Any, carry: Any) -> Any:
    """`carry` [n, ...] with the rows where `is_first` [n] replaced by `fresh`'s: a new
    episode starts from the controller's initial state (a planner's, a filter's)."""
    return jax.tree.map(lambda f, c: jnp.where(is_first.reshape((-1,) + (1,) * (c.ndim - 1)), f, c), fresh, carry)


def batch_policy(act_one: Callable) -> Callable:
    """`act_one(key, obs) -> action` (unbatched) as an `evaluate`/env-loop controller over [n]."""

    def act(key, obs, policy_state, is_first):
        del is_first
        keys = jax.random.split(key, obs.shape[0])
        return jax.vmap(act_one)(keys, obs), policy_state

    return act


# --- the command line's view of an algorithm --------------------------------------------------


class FieldInfo(NamedTuple):
    """One settable field of an algorithm, as `jaxmbrl fields` prints it."""

    name: str
    kind: str  # "static" (one program per value) or "sweepable" (traced: one program)
    default: Any
    range: Optional[Range]


def fields_of(algo) -> Tuple[FieldInfo, ...]:
    """Every Config field (static) and HParams field (sweepable) of the algorithm module."""
    config = algo.Config()
    out = [FieldInfo(f.name, "static", getattr(config, f.name), None) for f in dataclasses.fields(algo.Config)]
    ranges = getattr(algo.Config, "HPARAM_RANGES", {})
    for name, default in config.hparams()._asdict().items():
        out.append(FieldInfo(name, "sweepable", default, ranges.get(name)))
    return tuple(out)
