"""Planners by name: one registry behind `make_planner`, the configs and the command line.

A registry entry holds a factory, its HParams class (a NamedTuple of floats, every field
with a default), the `Range` of every field and whether the planner acts in discrete
action spaces. The built-in planners are registered here exactly as a user's would be.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Tuple

from jaxmbrl.planning._base import Planner, ProposalFn, ValueFn
from jaxmbrl.planning._continuous import (
    CEM_RANGES,
    ICEM_RANGES,
    MPPI_ELITES_RANGES,
    MPPI_RANGES,
    RANDOM_SHOOTING_RANGES,
    CEMHParams,
    ICEMHParams,
    MPPIElitesHParams,
    MPPIHParams,
    RandomShootingHParams,
    cem,
    icem,
    mppi,
    mppi_elites,
    random_shooting,
)
from jaxmbrl.planning._discrete import (
    DISCRETE_CEM_RANGES,
    DISCRETE_RANDOM_SHOOTING_RANGES,
    DiscreteCEMHParams,
    DiscreteRandomShootingHParams,
    discrete_cem,
    discrete_random_shooting,
)
from jaxmbrl.planning._tree import MCTS_RANGES, PUCT_RANGES, MCTSHParams, PUCTHParams, registered_factory
from jaxmbrl.types import Range, check_ranges


class PlannerEntry(NamedTuple):
    """One registered planner (see `register_planner`)."""

    factory: Callable[..., Planner]
    hparams_cls: type
    ranges: Mapping[str, Range]
    discrete: bool


_REGISTRY: Dict[str, PlannerEntry] = {}

# What `make_planner` may pass a factory; each factory receives the ones it names.
_SHAPE_ARGS = ("horizon", "num_samples", "num_elites", "num_iters", "num_particles",
               "value_fn", "proposal", "num_proposals")


def register_planner(name: str, factory: Callable[..., Planner], hparams_cls: type,
                     ranges: Mapping[str, Range], discrete: bool, *, replace: bool = False) -> None:
    """Makes a planner available by `name` to `make_planner`, configs and the command line.

    Args:
      name: the planner's name (not "auto").
      factory: `factory(model_fn, spec, *, horizon, num_samples, ...) -> Planner`.
        `make_planner` passes it those of `horizon, num_samples, num_elites, num_iters,
        num_particles, value_fn, proposal, num_proposals` its signature names (all of
        them to a `**kwargs`). Its `plan(key, state, model_params, obs, hparams=None)`
        takes `hparams` as an instance of `hparams_cls`.
      hparams_cls: a NamedTuple class of floats, every field with a default.
      ranges: the `Range` of every field of `hparams_cls`. A field name another planner
        already uses (alpha, discount, ...) must have the same range, so that the
        union of fields (`planner_float_fields`) has one meaning per name.
      discrete: True for discrete action spaces, False for continuous ones.
      replace: allow replacing an existing entry of the same name.

    Raises:
      ValueError: for a taken name, a malformed HParams class or ranges, or defaults
        outside their ranges.
    """
    if not isinstance(name, str) or not name or name == "auto":
        raise ValueError(f"register_planner: name must be a non-empty string other than 'auto', got {name!r}")
    if name in _REGISTRY and not replace:
        raise ValueError(f"register_planner: planner {name!r} is already registered; pass replace=True")
    if not callable(factory):
        raise ValueError(f"register_planner({name!r}): factory must be callable, got {factory!r}")
    fields = getattr(hparams_cls, "_fields", None)
    defaults = getattr(hparams_cls, "_field_defaults", {})
    if fields is None or set(defaults) != set(fields):
        raise ValueError(f"register_planner({name!r}): hparams_cls must be a NamedTuple class whose "
                         f"every field has a default")
    if set(ranges) != set(fields) or not all(isinstance(r, Range) for r in ranges.values()):
        raise ValueError(f"register_planner({name!r}): ranges must map each of {fields} to a "
                         f"types.Range, got keys {tuple(ranges)}")
    for field, (_, known) in _float_fields(exclude=name).items():
        if field in ranges and ranges[field] != known:
            raise ValueError(f"register_planner({name!r}): field {field!r} has range {ranges[field]}, "
                             f"but registered planners use {known}; rename the field")
    check_ranges(name, hparams_cls(), dict(ranges))
    _REGISTRY[name] = PlannerEntry(factory, hparams_cls, dict(ranges), bool(discrete))


def _entry(name: str) -> PlannerEntry:
    if name == "auto":
        raise ValueError("planner 'auto' stands for cem or discrete_cem; resolve it first with "
                         "planning.resolve_planner(name, spec)")
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"planner={name!r} is unknown; choose one of {planner_names()}.") from None


def planner_names(discrete: Optional[bool] = None) -> Tuple[str, ...]:
    """Registered planner names in registration order: all, or only (non-)discrete ones."""
    return tuple(n for n, e in _REGISTRY.items() if discrete is None or e.discrete == discrete)


def _float_fields(exclude: str = "") -> Dict[str, Tuple[Any, Range]]:
    union: Dict[str, Tuple[Any, Range]] = {}
    for name, entry in _REGISTRY.items():
        if name == exclude:
            continue
        for field in entry.hparams_cls._fields:
            union.setdefault(field, (entry.hparams_cls._field_defaults[field], entry.ranges[field]))
    return union


def planner_float_fields() -> Dict[str, Tuple[Any, Range]]:
    """`{field: (default, Range)}`: the union of every registered planner's HParams fields.

    Built in: alpha, discount (cem), beta, gamma, keep_fraction (icem), temperature,
    noise_scale (mppi), uniform_mix (discrete_cem). A field several planners share takes
    the default of the first registered one: `alpha` is 0.1 (cem, icem and
    discrete_cem's default, the one algorithms pass), not mppi's 0.0. An algorithm
    exposes these in its own HParams (as `planner_<field>`, discount as is) so that
    every planner float sweeps under vmap.
    """
    return _float_fields()


def planner_hparams(name: str, values: Mapping[str, Any]):
    """The HParams of planner `name`, fields taken from `values` (missing: defaults).

    Fields `values` has and the planner does not use are ignored, so an algorithm can
    pass the same union (`planner_float_fields`) whatever planner it runs. Values may be
    traced. `name` must be resolved (not "auto"; see `resolve_planner`).
    """
    cls = _entry(name).hparams_cls
    return cls(**{field: values[field] for field in cls._fields if field in values})


def check_hparams(name: str, hparams: Any) -> None:
    """Raises a one-line `ValueError` naming the planner and field of a value out of range.

    Concrete values (floats, arrays: a batch of sweep points is checked elementwise) are
    checked, NaN included; traced values are skipped.
    """
    check_ranges(name, hparams, _entry(name).ranges)


def _either(names: Tuple[str, ...]) -> str:
    quoted = [repr(n) for n in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def resolve_planner(name: str, spec, env_id: str = "") -> str:
    """The planner `name` stands for in an env of `spec` ("auto": CEM of the right kind).

    Raises:
      ValueError: for an unknown name or one that does not fit the action space.
    """
    env = env_id or spec.env_id
    names = ("auto",) + planner_names()
    if name not in names:
        raise ValueError(f"planner={name!r} is unknown; choose one of {names}.")
    if name == "auto":
        return "discrete_cem" if spec.discrete else "cem"
    if spec.discrete and not _REGISTRY[name].discrete:
        raise ValueError(
            f"planner={name!r} needs continuous actions, but {env} is discrete "
            f"({spec.num_actions} actions); use planner={_either(planner_names(True))}."
        )
    if not spec.discrete and _REGISTRY[name].discrete:
        raise ValueError(
            f"planner={name!r} needs discrete actions, but {env} is continuous; "
            f"use planner={_either(planner_names(False))}."
        )
    return name


def make_planner(name: str, model_fn, spec, *, horizon: int, num_samples: int, num_elites: int,
                 num_iters: int, num_particles: int = 1, value_fn: Optional[ValueFn] = None,
                 proposal: Optional[ProposalFn] = None, num_proposals: int = 0) -> Planner:
    """Builds the planner `name` (see `PLANNERS`; resolved with `resolve_planner`).

    Only shapes (and the optional `value_fn`, `proposal`) are fixed here; floats go to
    `plan(..., hparams)` as the planner's HParams (`planner_hparams`), and the planner's
    own defaults are `Planner.hparams`. `num_elites` and `num_iters` are ignored by
    planners that do not use them (random shooting; MPPI has no elites).

    Raises:
      ValueError: for an unknown planner, one that does not fit the action space, a
        `value_fn`/`proposal` the planner does not take, or invalid settings.
    """
    name = resolve_planner(name, spec)
    entry = _REGISTRY[name]
    given = dict(horizon=horizon, num_samples=num_samples, num_elites=num_elites,
                 num_iters=num_iters, num_particles=num_particles, value_fn=value_fn,
                 proposal=proposal, num_proposals=num_proposals)
    params = inspect.signature(entry.factory).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        kwargs = given
    else:
        kwargs = {k: v for k, v in given.items() if k in params}
        # A setting the factory cannot take must not be dropped silently (num_elites and
        # num_iters are the exceptions: only some planners have them).
        unused = {"value_fn": None, "proposal": None, "num_proposals": 0, "num_particles": 1}
        for arg, neutral in unused.items():
            if arg not in kwargs and (given[arg] is not None if neutral is None else given[arg] != neutral):
                raise ValueError(f"planner {name!r} does not take {arg}={given[arg]!r}")
    planner = entry.factory(model_fn, spec, **kwargs)
    if planner.hparams is None:
        planner = planner._replace(hparams=entry.hparams_cls())
    return planner


for _args in (
    ("cem", cem, CEMHParams, CEM_RANGES, False),
    ("icem", icem, ICEMHParams, ICEM_RANGES, False),
    ("mppi", mppi, MPPIHParams, MPPI_RANGES, False),
    ("random_shooting", random_shooting, RandomShootingHParams, RANDOM_SHOOTING_RANGES, False),
    ("mppi_elites", mppi_elites, MPPIElitesHParams, MPPI_ELITES_RANGES, False),
    ("discrete_cem", discrete_cem, DiscreteCEMHParams, DISCRETE_CEM_RANGES, True),
    ("discrete_random_shooting", discrete_random_shooting, DiscreteRandomShootingHParams,
     DISCRETE_RANDOM_SHOOTING_RANGES, True),
    # Tree search (mctx, an extra imported when one is built): Gumbel MuZero, or pUCT.
    ("mcts", registered_factory("gumbel"), MCTSHParams, MCTS_RANGES, True),
    ("mcts_puct", registered_factory("puct"), PUCTHParams, PUCT_RANGES, True),
):
    register_planner(*_args)
del _args


def __getattr__(name: str):
    # Derived from the registry at each access, so a user's planner is listed too.
    if name == "PLANNERS":
        return ("auto",) + planner_names()
    if name == "CONTINUOUS_PLANNERS":
        return planner_names(discrete=False)
    if name == "DISCRETE_PLANNERS":
        return planner_names(discrete=True)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
