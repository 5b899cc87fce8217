"""Dyna-Q (Sutton 1990): tabular Dyna-Q and deep Dyna-Q (DQN + a learned ensemble),
each a `Config`, `HParams` and `make_train` whose whole loop compiles to one program."""
from jaxmbrl.algorithms.dyna._config import (
    EXPLORATIONS,
    MODES,
    PLANNING_POLICIES,
    TERMINATIONS,
    Config,
    EpisodeLog,
    HParams,
    Metrics,
    Train,
)
from jaxmbrl.algorithms.dyna._deep import DeepState, default_model
from jaxmbrl.algorithms.dyna._dyna import make_train, supports
from jaxmbrl.algorithms.dyna._tabular import (
    TabularModel,
    TabularState,
    bonus_planning_update,
    exploration_bonus,
    planning_pairs,
    planning_update,
    q_learning_update,
    record,
    replay_pair,
    simulate,
)
from jaxmbrl.envs._dyna_maze import state_index, tabular_num_states

__all__ = [
    "EXPLORATIONS",
    "MODES",
    "PLANNING_POLICIES",
    "TERMINATIONS",
    "Config",
    "DeepState",
    "EpisodeLog",
    "HParams",
    "Metrics",
    "TabularModel",
    "TabularState",
    "Train",
    "bonus_planning_update",
    "default_model",
    "exploration_bonus",
    "make_train",
    "planning_pairs",
    "planning_update",
    "q_learning_update",
    "record",
    "replay_pair",
    "simulate",
    "state_index",
    "supports",
    "tabular_num_states",
]
