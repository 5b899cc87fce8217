"""Algorithms by name: the runner, `jaxmbrl train ALGO`, `jaxmbrl fields` and
`jaxmbrl envs` read this table, so adding an algorithm is its folder plus one line here
(or one `register_algorithm` call in a user's module loaded with `jaxmbrl --import`)."""
from __future__ import annotations

import importlib
from typing import Dict, NamedTuple, Tuple


class AlgorithmEntry(NamedTuple):
    """`module` defines Config, HParams, make_train and supports (see `_contract`)."""

    name: str
    module: str
    summary: str


_REGISTRY: Dict[str, AlgorithmEntry] = {}


def register_algorithm(name: str, module: str, summary: str = "") -> None:
    """Makes the algorithm in `module` (a dotted import path) available as `name`."""
    _REGISTRY[name] = AlgorithmEntry(name, module, summary)


def algorithm_names() -> Tuple[str, ...]:
    """The registered algorithms' names, in registration order (`jaxmbrl train NAME`)."""
    return tuple(_REGISTRY)


def algorithm_entry(name: str) -> AlgorithmEntry:
    return _REGISTRY[name]


def load_algorithm(name: str):
    """The module of the algorithm registered as `name` (imported on first use)."""
    return importlib.import_module(_REGISTRY[name].module)


register_algorithm("pets", "jaxmbrl.algorithms.pets", "MPC over a probabilistic ensemble (Chua et al. 2018)")
register_algorithm("mbpo", "jaxmbrl.algorithms.mbpo", "SAC on branched model rollouts (Janner et al. 2019)")
register_algorithm("dyna", "jaxmbrl.algorithms.dyna", "tabular Dyna-Q, or DQN with a learned model (Sutton 1990)")
register_algorithm("dreamer", "jaxmbrl.algorithms.dreamer", "RSSM world model, actor-critic in imagination (Hafner et al.)")
register_algorithm("muzero", "jaxmbrl.algorithms.muzero", "tree search over a learned latent model (Schrittwieser et al. 2020)")
register_algorithm("tdmpc2", "jaxmbrl.algorithms.tdmpc2", "value-guided MPPI in a learned latent space (Hansen et al. 2024)")
