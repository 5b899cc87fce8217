"""Planner interface, trajectory scoring, proposals and the validation every planner shares.

Shapes follow the legend in `jaxmbrl.types` (N candidates, H horizon, P particles,
A action dim; M proposal sequences).

A planner's floats (momentum, temperature, discount, ...) are its own `HParams`
NamedTuple, passed to `plan` at call time as mctx passes its knobs: one compiled `plan`
serves every value, and a vmap over `HParams` sweeps them. Shapes (horizon, samples,
elites, iterations, particles, proposals) are fixed when the planner is built.
"""
from __future__ import annotations

import numbers
import operator
from typing import Any, Callable, Mapping, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl.types import Array, ModelFn, Params, PRNGKey, PyTree, Range, check_ranges

# `value_fn(params, obs) -> [] float32`: the value of the state reached after the last
# planned action. `params` is the `model_params` given to `plan` (pack model and value
# parameters into one pytree, as mctx's `recurrent_fn` does).
ValueFn = Callable[[Params, PyTree], Array]
# `proposal(key, params, obs) -> action`: one unbatched raw action of a policy prior
# (TD-MPC2, MuZero); [A] float32 for continuous planners, an int32 scalar for discrete.
ProposalFn = Callable[[PRNGKey, Params, PyTree], Array]

# Ranges shared by the planners' HParams fields.
UNIT = Range(0.0, 1.0)  # discount, keep_fraction, uniform_mix
MOMENTUM = Range(0.0, 1.0, high_open=True)  # alpha: 1 would never move
NON_NEGATIVE = Range(0.0)  # beta
AT_LEAST_ONE = Range(1.0)  # gamma
POSITIVE = Range(0.0, low_open=True)  # temperature, noise_scale


class PlannerState(NamedTuple):
    """The solution a planner warm-starts from on its next call.

    Every built-in planner keeps these three fields, so that an algorithm can carry any
    planner's state in its own state; a planner with no use for a field leaves it `None`.

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
        particle-averaged, terminal value included) return of `plan`; for planners that
        execute a distribution's mean (CEM, MPPI) the elite mean / softmax-weighted
        mean of the sampled returns.
      plan: the chosen action sequence, [H, A] float32 or [H] int32 (discrete). Its
        first step is the action returned by `plan`.
    """

    expected_return: Array
    plan: Array


class Planner(NamedTuple):
    """A model-predictive planner as a pair of pure functions (closes over static config).

    Attributes:
      init: `() -> PlannerState`, the state before the first step of an episode.
      plan: `(key, state, model_params, obs, hparams=None) -> (action, state, PlanInfo)`.
        `obs` is one unbatched observation (any pytree `model_fn` accepts); `action` is
        one raw action ([A] float32, or an int32 scalar for discrete planners).
        `hparams` is the planner's own HParams NamedTuple of floats (Python floats or
        float32 arrays, traced or not); `None` uses `Planner.hparams`. Changing its
        values does not recompile a jitted `plan`. vmap `plan` over environments or
        over `hparams`; it does not call `jit` itself.
      hparams: the default HParams (the floats the planner was built with), e.g.
        `planner.hparams._replace(alpha=0.3)`.
    """

    init: Callable[[], PlannerState]
    plan: Callable[..., Tuple[Array, PlannerState, PlanInfo]]
    hparams: Any = None


def _strong(x: Any) -> Array:
    # Python scalars inside gymnax states (e.g. `time=0`) become weakly typed arrays, and
    # a scan whose carry changes weak type fails to trace; casting fixes the type once.
    x = jnp.asarray(x)
    return x.astype(x.dtype)


def _like(new: PyTree, old: PyTree) -> PyTree:
    # A model may return a field in another dtype than it was given (e.g. an int time
    # counter as float); a scan carry must keep its types.
    return jax.tree.map(lambda n, o: jnp.asarray(n).astype(o.dtype), new, old)


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
    value_fn: Optional[ValueFn] = None,
) -> Array:
    """Predicted discounted return of one action sequence, averaged over particles.

    All particles start from `obs` and step together through a `lax.scan` over the
    horizon (see `particle_step_fn`), with a fresh key per step, so a stochastic model
    gives each particle distinct samples. Once a particle's model predicts
    `terminated`, its later rewards count zero: the terminating transition's own reward
    is kept. With a `value_fn`, each particle still alive after the last action adds
    `discount**H * value_fn(params, final_obs)`; a terminated particle adds nothing.

    Args:
      model_fn: `(key, params, obs, action) -> (next_obs, reward, terminated)`, unbatched.
      params: the model's parameters, passed through unchanged (to `value_fn` as well).
      key: PRNG key of this candidate.
      obs: the start observation (any pytree; not batched).
      actions: [H, A] float32 or [H] int32.
      discount: scalar (Python float or traced), the per-step discount.
      num_particles: P (static).
      value_fn: optional `(params, obs) -> [] float32`, the terminal value.

    Returns:
      float32 scalar: `mean_p [sum_t discount**t * alive_{p,t} * r_{p,t}
      + discount**H * alive_{p,H} * V(s_{p,H})]` (a model with `score_particles`,
      e.g. `planning.optimistic`, replaces the mean over p: see `score_particles`).
    """
    obs = jax.tree.map(lambda x: jnp.broadcast_to(_strong(x), (num_particles,) + jnp.shape(x)), obs)
    per_particle = _particle_returns(particle_step_fn(model_fn), params, key, obs, actions, discount, value_fn,
                                     (num_particles,))
    return score_particles(model_fn, params, per_particle)


def score_particles(model_fn: ModelFn, params: Params, returns: Array) -> Array:
    """A candidate's score from its particles' returns: [P, ...] -> [...].

    The mean over particles, unless the model scores them itself through a
    `score_particles(params, returns)` method (`planning.optimistic`: a UCB over
    ensemble members).
    """
    own = getattr(model_fn, "score_particles", None)
    return returns.mean(0) if own is None else own(params, returns)


def _particle_returns(step_fn: Callable, params: Params, key: PRNGKey, state: PyTree, actions: Array,
                      discount: Any, value_fn: Optional[ValueFn], batch: Tuple[int, ...]) -> Array:
    """Discounted return of every particle, terminal value included: [*B] float32.

    `state` leaves are [*B, ...] (B: the particle batch, [P] or [P, N]); `actions` [H, ...]
    holds each step's action for `step_fn(key, params, state, action) -> (next_state,
    reward [*B], terminated [*B])`, one key per step.
    """
    discount = jnp.asarray(discount, jnp.float32)

    def step(carry, inputs):
        state, alive, weight = carry
        action, step_key = inputs
        next_state, reward, terminated = step_fn(step_key, params, state, action)
        next_state = _like(next_state, state)
        reward = jnp.asarray(reward, jnp.float32).reshape(batch)
        terminated = jnp.asarray(terminated, jnp.bool_).reshape(batch)
        # `where`, not a product: a model stepped past a terminal state may return
        # non-finite rewards, which must not leak into the sum.
        gained = jnp.where(alive, weight * reward, jnp.zeros((), jnp.float32))
        return (next_state, alive & ~terminated, weight * discount), gained

    step_keys = jax.random.split(key, actions.shape[0])
    init = (state, jnp.ones(batch, jnp.bool_), jnp.ones((), jnp.float32))
    (final, alive, weight), gains = jax.lax.scan(step, init, (actions, step_keys))
    if value_fn is None:
        return gains.sum(0)
    value_of = lambda s: value_fn(params, s)  # noqa: E731
    for _ in batch:
        value_of = jax.vmap(value_of)
    value = jnp.asarray(value_of(final), jnp.float32).reshape(batch)
    # `weight` is discount**H after the scan; `where` again keeps a terminated
    # particle's (possibly non-finite) value out.
    terminal = jnp.where(alive, weight * value, jnp.zeros((), jnp.float32))
    return gains.sum(0) + terminal


def evaluate_candidates(
    model_fn: ModelFn,
    params: Params,
    key: PRNGKey,
    obs: PyTree,
    candidates: Array,
    discount: Any = 1.0,
    num_particles: int = 1,
    value_fn: Optional[ValueFn] = None,
) -> Array:
    """`trajectory_return` of every candidate: [N, H, ...] -> [N] float32.

    A model with an `over_population(key, params, obs [P, N, ...], action [N, ...])`
    method (every `models.as_planner_model_fn`) steps all P * N particles of the
    population in one call per horizon step, with one key per step; any other
    `model_fn` is vmapped over candidates, each with its own key, and scored by
    `trajectory_return`. Both compute the same quantity. NaN returns (a diverging
    model) become -inf so that they are never chosen as elites.
    """
    if getattr(model_fn, "over_population", None) is not None:
        returns = population_return(model_fn, params, key, obs, candidates, discount, num_particles, value_fn)
    else:
        keys = jax.random.split(key, candidates.shape[0])
        returns = jax.vmap(
            lambda k, a: trajectory_return(model_fn, params, k, obs, a, discount, num_particles, value_fn)
        )(keys, candidates)
    return jnp.where(jnp.isnan(returns), -jnp.inf, returns)


def population_return(
    model_fn: ModelFn,
    params: Params,
    key: PRNGKey,
    obs: PyTree,
    candidates: Array,
    discount: Any = 1.0,
    num_particles: int = 1,
    value_fn: Optional[ValueFn] = None,
) -> Array:
    """`trajectory_return` of N candidates [N, H, ...] -> [N], the population stepped as one.

    The P particles of the N candidates are one batch [P, N, ...] (particle-major) that
    `model_fn.over_population` steps once per horizon step: the planner's innermost
    loop is then a few large matrix products with no per-candidate reordering.
    """
    n = candidates.shape[0]
    state = jax.tree.map(lambda x: jnp.broadcast_to(_strong(x), (num_particles, n) + jnp.shape(x)), obs)
    per_particle = _particle_returns(model_fn.over_population, params, key, state,
                                     jnp.swapaxes(candidates, 0, 1), discount, value_fn, (num_particles, n))
    return score_particles(model_fn, params, per_particle)


def shift(sequence: Array, last: Array) -> Array:
    """Warm start: drops the executed first step, appends `last`. [H, ...] -> [H, ...]."""
    return jnp.concatenate([sequence[1:], jnp.broadcast_to(last, sequence.shape[1:])[None]], 0)


def proposal_sequences(
    proposal: ProposalFn,
    model_fn: ModelFn,
    params: Params,
    key: PRNGKey,
    obs: PyTree,
    horizon: int,
    num_proposals: int,
    transform: Optional[Callable[[Array], Array]] = None,
) -> Array:
    """M action sequences of a policy prior rolled through the model: [M, H, ...].

    Each sequence starts at `obs` and alternates `action = proposal(k, params, state)`
    with one `model_fn` step (a `lax.scan` over H with one key per step, vmapped over M
    with one key per sequence), so a stochastic policy or model gives M different
    sequences. Terminations are ignored here: the sequences are scored (and terminated
    particles masked) by `trajectory_return` like any other candidate.

    Args:
      proposal: `(key, params, obs) -> action`, one unbatched raw action.
      model_fn: `(key, params, obs, action) -> (next_obs, reward, terminated)`, unbatched.
      params: passed to both `proposal` and `model_fn`.
      key: PRNG key.
      obs: the start observation (any pytree; not batched).
      horizon: H (static). num_proposals: M >= 1 (static).
      transform: optional map of the raw action to the one stepped and returned (the
        planners clip to the action bounds and fix the dtype).

    Returns:
      [M, H, A] (or [M, H] for scalar actions): the proposed sequences.
    """
    transform = transform or (lambda a: a)
    obs = jax.tree.map(_strong, obs)

    def rollout(seq_key):
        def step(state, step_key):
            act_key, model_key = jax.random.split(step_key)
            action = transform(proposal(act_key, params, state))
            next_state, _, _ = model_fn(model_key, params, state, action)
            return _like(next_state, state), action

        _, actions = jax.lax.scan(step, obs, jax.random.split(seq_key, horizon))
        return actions

    return jax.vmap(rollout)(jax.random.split(key, num_proposals))


def insert_proposals(samples: Array, proposals: Optional[Array], end: int) -> Array:
    """Puts the M proposals in rows `[end - M, end)` of `samples` [N, H, ...] (no-op if None)."""
    if proposals is None:
        return samples
    return samples.at[end - proposals.shape[0]:end].set(proposals.astype(samples.dtype))


def make_proposer(proposal: Optional[ProposalFn], model_fn: ModelFn, horizon: int,
                  num_proposals: int, transform: Optional[Callable[[Array], Array]] = None):
    """`propose(key, params, obs) -> (key, proposals [M, H, ...] or None)`.

    Splits a proposal key off `key` only when M > 0, so that a planner without
    proposals draws exactly the random numbers it drew before proposals existed.
    """

    def propose(key, params, obs):
        if num_proposals == 0:
            return key, None
        key, proposal_key = jax.random.split(key)
        return key, proposal_sequences(proposal, model_fn, params, proposal_key, obs, horizon,
                                       num_proposals, transform)

    return propose


def call_hparams(name: str, hparams: Any, defaults: Any, ranges: Mapping[str, Range]) -> Any:
    """The floats one `plan` call uses: `defaults` for `None`, float32 arrays either way.

    Concrete values are range-checked (a jitted `plan` sees tracers and skips this).
    """
    if hparams is None:
        hparams = defaults
    elif not isinstance(hparams, type(defaults)):
        raise TypeError(
            f"{name}.plan takes hparams as {type(defaults).__name__} (see planner.hparams), "
            f"got {type(hparams).__name__}"
        )
    else:
        check_ranges(name, hparams, dict(ranges))
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), hparams)


# --- validation (runs at factory call time, on static values only) -------------------

_CONTINUOUS = "cem, icem, mppi or random_shooting"
_DISCRETE = "discrete_cem, discrete_random_shooting or mcts"


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


def check_common(name, spec, horizon, num_samples, num_particles, discrete: bool):
    """Validates the shapes every planner shares; returns the static ints."""
    (check_discrete if discrete else check_continuous)(name, spec)
    horizon = check_count(name, "horizon", horizon)
    num_samples = check_count(name, "num_samples", num_samples)
    num_particles = check_count(name, "num_particles", num_particles)
    return horizon, num_samples, num_particles


def check_extras(name: str, value_fn: Any, proposal: Any, num_proposals: Any,
                 max_proposals: int, reserved: str = "") -> int:
    """Validates `value_fn`, `proposal` and `num_proposals`; returns M as a Python int.

    `max_proposals` is how many samples a proposal may replace (the population less the
    slots the planner reserves, described by `reserved`).
    """
    if value_fn is not None and not callable(value_fn):
        raise ValueError(f"{name}: value_fn must be callable (params, obs) -> value, got {value_fn!r}")
    num_proposals = check_count(name, "num_proposals", num_proposals, minimum=0)
    if proposal is not None and not callable(proposal):
        raise ValueError(f"{name}: proposal must be callable (key, params, obs) -> action, got {proposal!r}")
    if num_proposals and proposal is None:
        raise ValueError(f"{name}: num_proposals={num_proposals} needs a proposal policy; pass proposal=...")
    if proposal is not None and not num_proposals:
        raise ValueError(f"{name}: a proposal is given but num_proposals=0 would never use it; "
                         f"pass num_proposals=1 or more")
    if num_proposals > max_proposals:
        raise ValueError(
            f"{name}: num_proposals={num_proposals} leaves no room in the population: at most "
            f"{max_proposals} ({reserved or 'num_samples - 1'}); raise num_samples"
        )
    return num_proposals


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


def check_positive(name: str, param: str, value: Any) -> None:
    """A concrete value (scalar or array) must be > 0; traced values are not checked."""
    if isinstance(value, jax.core.Tracer) or value is None:
        return
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        bad = not value > 0
    else:
        import numpy as np

        bad = not np.all(np.asarray(value, np.float64) > 0)
    if bad:
        raise ValueError(f"{name}: {param} must be > 0, got {value}")
