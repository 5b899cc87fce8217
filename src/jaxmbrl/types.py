"""Shared types.

Shape legend used in docstrings across the package:
  B  batch (minibatch, envs or candidates)      O  observation dim (flattened)
  A  action dim (continuous) or num_actions (one-hot)
  E  ensemble members                           H  planning horizon
  N  candidate action sequences                 P  particles per candidate
  T  time / sequence length                     C  buffer capacity
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Protocol, Tuple

import jax

PRNGKey = jax.Array
Array = jax.Array
Params = Any
PyTree = Any


class MissingExtraError(ImportError):
    """Raised where an optional extra is needed and not installed (Brax for a `brax/...`
    id, mctx for tree search); the message names the `pip install 'jaxmbrl[...]'` to run."""


class Transition(NamedTuple):
    """One environment transition (unbatched) or a batch of them (leading B).

    `next_obs` is always the true successor of `obs`: at the end of an episode it is
    gymnax's `info["final_observation"]`, never the observation after the reset.
    `terminated` (a true terminal state: no bootstrapping) is kept apart from
    `truncated` (a time limit: bootstrap through it).
    """

    obs: Array  # [..., *obs_shape]
    action: Array  # [..., A] float (continuous) or [...] int32 (discrete)
    reward: Array  # [...] float32
    next_obs: Array  # [..., *obs_shape]
    terminated: Array  # [...] bool
    truncated: Array  # [...] bool


class ModelFn(Protocol):
    """`model_fn(key, params, obs, action) -> (next_obs, reward, terminated)`.

    Unbatched: `obs` is one observation (or, for oracle models, one env state pytree),
    `action` one action. Planners vmap it over candidates and particles.
    """

    def __call__(
        self, key: PRNGKey, params: Params, obs: PyTree, action: Array
    ) -> Tuple[PyTree, Array, Array]: ...


class RewardFn(Protocol):
    """`reward_fn(obs, action, next_obs) -> reward` (unbatched; scalar float32)."""

    def __call__(self, obs: Array, action: Array, next_obs: Array) -> Array: ...


class TerminationFn(Protocol):
    """`termination_fn(obs, action, next_obs) -> terminated` (unbatched; scalar bool)."""

    def __call__(self, obs: Array, action: Array, next_obs: Array) -> Array: ...


StepFn = Callable[..., Any]


class Range(NamedTuple):
    """The valid interval of a float setting, for range checks and `jaxmbrl fields`.

    `Range(0, inf, low_open=True)` is (0, inf); bounds are inclusive unless open.
    """

    low: float = float("-inf")
    high: float = float("inf")
    low_open: bool = False
    high_open: bool = False

    def __str__(self) -> str:
        lo = "(" if self.low_open or self.low == float("-inf") else "["
        hi = ")" if self.high_open or self.high == float("inf") else "]"
        return f"{lo}{self.low:g}, {self.high:g}{hi}"

    def contains(self, value):
        """Elementwise membership for concrete values (numpy); NaN is never inside."""
        import numpy as np

        v = np.asarray(value, np.float64)
        # An infinite bound is never a valid value: inf learning rates or decays are divergence.
        above = v > self.low if self.low_open or self.low == float("-inf") else v >= self.low
        below = v < self.high if self.high_open or self.high == float("inf") else v <= self.high
        return above & below


def check_ranges(owner: str, values: Any, ranges: "dict[str, Range]") -> None:
    """Raises `ValueError` naming the first field of `values` outside its `Range`.

    `values` is a NamedTuple of floats or arrays (a batch of sweep points is checked
    elementwise). Traced values are skipped: ranges are checked where values are
    concrete (the command line, `Config.validate_hparams`), never inside a trace.
    """
    import numpy as np

    for name, value in values._asdict().items():
        rng = ranges.get(name)
        if rng is None or isinstance(value, jax.core.Tracer):
            continue
        if value is None:
            raise ValueError(f"{owner}.{name} is None; it must be a float in {rng}.")
        try:
            ok = rng.contains(value)
        except (TypeError, ValueError):
            raise ValueError(f"{owner}.{name}={value!r:.40} is not a float; it must lie in {rng}.") from None
        if not np.all(ok):
            bad = np.asarray(value, np.float64).reshape(-1)[~np.asarray(ok).reshape(-1)][0]
            raise ValueError(f"{owner}.{name}={bad:g} is out of range: it must lie in {rng}.")
