"""Planner interface, trajectory scoring and the validation shared by every planner.

Shapes follow the legend in `jaxmbrl.types` (N candidates, H horizon, P particles,
A action dim).
"""
from __future__ import annotations

import numbers
import operator
from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl.types import Array, ModelFn, Params, PRNGKey, PyTree


class PlannerState(NamedTuple):
    """The solution a planner warm-starts from on its next call.

    Every planner keeps the same three fields so that algorithms can carry any planner's
    state in their own state; a planner that has no use for a field leaves it `None`.

    Attributes:
      mean: the last solution. Continuous planners: the action sequence [H, A] (the
        sampling mean for CEM, iCEM and MPPI, the best sequence for random shooting).
        Discrete planners: per-step action probabilities [H, num_actions] (a one-hot
        row per step for discrete random shooting's best sequence).
      std: [H, A] sampling standard deviation the next call starts from (CEM and iCEM;
        both reset it to the initial std after each call, as Chua et al. 2018 and
        Pinneri et al. 2020 do, because a collapsed std would stop exploring). `None`
        for the other planners.
      elites: [S, H, A] the best sequences of iCEM's last iteration, kept for the next
        call (shifted by one step); `None` for the other planners.
    """

    mean: Array
    std: Optional[Array] = None
    elites: Optional[Array] = None


class PlanInfo(NamedTuple):
    """Diagnostics of one `plan` call.

    Attributes:
      expected_return: scalar float32, the model's predicted (discounted,
        particle-averaged) return of `plan`; for planners that execute a distribution's
        mean (CEM, MPPI) the elite mean / softmax-weighted mean of the sampled returns.
      plan: the chosen action sequence, [H, A] float32 or [H] int32 (discrete). Its
        first step is the action returned by `plan`.
    """

    expected_return: Array
    plan: Array


class Planner(NamedTuple):
    """A model-predictive planner as a pair of pure functions (closes over static config).

    Attributes:
      init: `() -> PlannerState`, the state before the first step of an episode.
      plan: `(key, state, model_params, obs) -> (action, state, PlanInfo)`. `obs` is one
        unbatched observation (any pytree `model_fn` accepts); `action` is one raw
        action ([A] float32, or an int32 scalar for discrete planners). vmap `plan` over
        environments; it does not call `jit` itself.
    """

    init: Callable[[], PlannerState]
    plan: Callable[[PRNGKey, PlannerState, Params, PyTree], Tuple[Array, PlannerState, PlanInfo]]


def _strong(x: Any) -> Array:
    # Python scalars inside gymnax states (e.g. `time=0`) become weakly typed arrays, and
    # a scan whose carry changes weak type fails to trace; casting fixes the type once.
    x = jnp.asarray(x)
    return x.astype(x.dtype)


def particle_step_fn(model_fn: ModelFn) -> Callable:
    """`(key, params, obs [P, ...], action) -> (next_obs [P, ...], reward [P], terminated [P])`.

    A model may step all particles of a candidate at once through an `over_particles`
    attribute (learned ensembles group particles by member, which keeps each member's
    work one dense matrix product, and gives TSinf its fixed particle-member pairing);
    otherwise `model_fn` is vmapped over particles with one key each.
    """
    grouped = getattr(model_fn, "over_particles", None)
    if grouped is not None:
        return grouped

    def vmapped(key, params, obs, action):
        num_particles = jax.tree.leaves(obs)[0].shape[0]
        keys = jax.random.split(key, num_particles)
        return jax.vmap(model_fn, in_axes=(0, None, 0, None))(keys, params, obs, action)

    return vmapped


def trajectory_return(
    model_fn: ModelFn,
    params: Params,
    key: PRNGKey,
    obs: PyTree,
    actions: Array,
    discount: Any = 1.0,
    num_particles: int = 1,
) -> Array:
    """Predicted discounted return of one action sequence, averaged over particles.

    All particles start from `obs` and step together through a `lax.scan` over the
    horizon (see `particle_step_fn`), with a fresh key per step, so a stochastic model
    gives each particle distinct samples. Once a particle's model predicts
    `terminated`, its later rewards count zero: the terminating transition's own reward
    is kept.

    Args:
      model_fn: `(key, params, obs, action) -> (next_obs, reward, terminated)`, unbatched.
      params: the model's parameters, passed through unchanged.
      key: PRNG key of this candidate.
      obs: the start observation (any pytree; not batched).
      actions: [H, A] float32 or [H] int32.
      discount: scalar (Python float or traced), the per-step discount.
      num_particles: P (static).

    Returns:
      float32 scalar: `mean_p sum_t discount**t * alive_{p,t} * r_{p,t}`.
    """
    obs = jax.tree.map(lambda x: jnp.broadcast_to(_strong(x), (num_particles,) + jnp.shape(x)), obs)
    discount = jnp.asarray(discount, jnp.float32)
    step_particles = particle_step_fn(model_fn)

    def step(carry, inputs):
        state, alive, weight = carry
        action, step_key = inputs
        next_state, reward, terminated = step_particles(step_key, params, state, action)
        next_state = jax.tree.map(lambda new, old: jnp.asarray(new).astype(old.dtype), next_state, state)
        reward = jnp.asarray(reward, jnp.float32).reshape((num_particles,))
        terminated = jnp.asarray(terminated, jnp.bool_).reshape((num_particles,))
        # `where`, not a product: a model stepped past a terminal state may return
        # non-finite rewards, which must not leak into the sum.
        gained = jnp.where(alive, weight * reward, jnp.zeros((), jnp.float32))
        return (next_state, alive & ~terminated, weight * discount), gained

    step_keys = jax.random.split(key, actions.shape[0])
    init = (obs, jnp.ones((num_particles,), jnp.bool_), jnp.ones((), jnp.float32))
    _, gains = jax.lax.scan(step, init, (actions, step_keys))
    return gains.sum(0).mean()


def evaluate_candidates(
    model_fn: ModelFn,
    params: Params,
    key: PRNGKey,
    obs: PyTree,
    candidates: Array,
    discount: Any = 1.0,
    num_particles: int = 1,
) -> Array:
    """`trajectory_return` of every candidate: [N, H, ...] -> [N] float32.

    Each candidate gets its own key. NaN returns (a diverging model) become -inf so that
    they are never chosen as elites.
    """
    keys = jax.random.split(key, candidates.shape[0])
    returns = jax.vmap(
        lambda k, a: trajectory_return(model_fn, params, k, obs, a, discount, num_particles)
    )(keys, candidates)
    return jnp.where(jnp.isnan(returns), -jnp.inf, returns)


def shift(sequence: Array, last: Array) -> Array:
    """Warm start: drops the executed first step, appends `last`. [H, ...] -> [H, ...]."""
    return jnp.concatenate([sequence[1:], jnp.broadcast_to(last, sequence.shape[1:])[None]], 0)


# --- validation (runs at factory call time, on static values only) -------------------

_CONTINUOUS = "cem, icem, mppi or random_shooting"
_DISCRETE = "discrete_cem or discrete_random_shooting"


def check_continuous(name: str, spec) -> None:
    if spec.discrete:
        raise ValueError(
            f"{name} needs a continuous action space; {spec.env_id} is discrete "
            f"({spec.num_actions} actions): use {_DISCRETE}"
        )


def check_discrete(name: str, spec) -> None:
    if not spec.discrete:
        raise ValueError(
            f"{name} needs a discrete action space; {spec.env_id} is continuous "
            f"({spec.action_dim}-dimensional actions): use {_CONTINUOUS}"
        )


def check_common(name, spec, horizon, num_samples, num_particles, discount, discrete: bool):
    """Validates the settings every planner shares; returns the static ints."""
    (check_discrete if discrete else check_continuous)(name, spec)
    horizon = check_count(name, "horizon", horizon)
    num_samples = check_count(name, "num_samples", num_samples)
    num_particles = check_count(name, "num_particles", num_particles)
    check_float(name, "discount", discount, 0.0, 1.0)
    return horizon, num_samples, num_particles


def check_count(name: str, param: str, value: Any, minimum: int = 1) -> int:
    """A static integer setting >= `minimum`, returned as a Python int."""
    try:
        if isinstance(value, bool):
            raise TypeError
        value = operator.index(value)
    except TypeError:
        raise ValueError(
            f"{name}: {param} must be a Python int (it fixes an array shape), got "
            f"{value!r}; pass e.g. {param}={max(minimum, 1)}"
        ) from None
    if value < minimum:
        raise ValueError(
            f"{name}: {param} must be >= {minimum}, got {value}; pass {param}={minimum} or more"
        )
    return value


def check_elites(name: str, num_elites: Any, num_samples: int) -> int:
    num_elites = check_count(name, "num_elites", num_elites)
    if num_elites > num_samples:
        raise ValueError(
            f"{name}: num_elites={num_elites} exceeds num_samples={num_samples}; lower "
            f"num_elites or raise num_samples (about 10% elites is usual)"
        )
    return num_elites


def check_float(name: str, param: str, value: Any, low: float, high: float,
                low_open: bool = False, high_open: bool = False, hint: str = "") -> None:
    """Range check of a float setting; traced values (sweeps) are not checked."""
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        return
    too_low = value <= low if low_open else value < low
    too_high = value >= high if high_open else value > high
    if too_low or too_high or value != value:
        lo = "(" if low_open else "["
        hi = ")" if high_open else "]"
        raise ValueError(f"{name}: {param} must lie in {lo}{low}, {high}{hi}, got {value}{hint}")
