"""Exploration: the 10-armed bandit testbed with epsilon-greedy and UCB (Sutton & Barto
ch. 2), and UCB action scores for tables of values and counts."""
from jaxmbrl.exploration._bandit import (
    BANDIT_POLICIES,
    BanditRun,
    BanditState,
    bandit_init,
    bandit_update,
    run_bandit,
    run_testbed,
    select_arm,
    ucb_action,
    ucb_scores,
)
from jaxmbrl.exploration._uncertainty import disagreement, linear_decay, ucb_return

__all__ = [
    "BANDIT_POLICIES",
    "BanditRun",
    "BanditState",
    "bandit_init",
    "bandit_update",
    "disagreement",
    "linear_decay",
    "run_bandit",
    "run_testbed",
    "select_arm",
    "ucb_action",
    "ucb_return",
    "ucb_scores",
]
