"""The 10-armed testbed (Sutton & Barto, RL: An Introduction, 2nd ed., sections 2.3 and 2.7).

Each run draws the arms' true values q*(a) ~ N(0, 1); pulling arm a pays a reward
~ N(q*(a), 1). The learner keeps sample-average estimates Q(a) (initially 0) and counts
N(a), and picks its arm either epsilon-greedily or by upper confidence bounds (UCB):

    A_t = argmax_a [ Q(a) + c * sqrt(ln t / N(a)) ],  an arm with N(a) = 0 first,

with t the 1-based round. A run is a `lax.scan` over rounds; `run_testbed` vmaps runs,
so the whole of Figure 2.4 (2,000 runs x 1,000 rounds) is one program.

`ucb_scores` / `ucb_action` serve any table of values and counts: tabular Dyna-Q's
`exploration="ucb"` calls them on its Q-table row.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from jaxmbrl.agents.dqn import epsilon_greedy, random_argmax
from jaxmbrl.types import Array, PRNGKey

BANDIT_POLICIES = ("epsilon_greedy", "ucb")


def ucb_scores(values: Array, counts: Array, t: Array, c: Array) -> Array:
    """[A] float32 `values + c * sqrt(ln t / counts)`, +inf where `counts == 0`.

    Args:
      values: [A] estimates; counts: [A] int tries so far; t: [] the 1-based step (ln 1 =
        0: no bonus yet); c: [] float >= 0, may be traced.
    """
    counts = jnp.asarray(counts, jnp.float32)
    log_t = jnp.log(jnp.maximum(jnp.asarray(t, jnp.float32), 1.0))
    bonus = c * jnp.sqrt(log_t / jnp.maximum(counts, 1.0))
    return jnp.where(counts > 0, values + bonus, jnp.inf).astype(jnp.float32)


def ucb_action(key: PRNGKey, values: Array, counts: Array, t: Array, c: Array) -> Array:
    """[] int32 UCB action: an untried one first, else the best `ucb_scores`; ties at random."""
    return random_argmax(key, ucb_scores(values, counts, t, c))


class BanditState(NamedTuple):
    """A learner's sample averages over one testbed run."""

    values: Array  # [K] float32 Q(a)
    counts: Array  # [K] int32 N(a)
    t: Array  # [] int32 rounds played


class BanditRun(NamedTuple):
    """Per-round outcomes of runs: [..., T] each (leading axes from vmap)."""

    rewards: Array  # float32
    optimal: Array  # bool: whether the pulled arm was the best one of its run


def bandit_init(num_arms: int) -> BanditState:
    """Estimates Q = 0 and counts N = 0 for `num_arms` arms, before the first round."""
    return BanditState(values=jnp.zeros((num_arms,), jnp.float32), counts=jnp.zeros((num_arms,), jnp.int32),
                       t=jnp.zeros((), jnp.int32))


def bandit_update(state: BanditState, arm: Array, reward: Array) -> BanditState:
    """Incremental sample average: `Q(a) += (R - Q(a)) / N(a)` after counting the pull."""
    counts = state.counts.at[arm].add(1)
    values = state.values.at[arm].add((reward - state.values[arm]) / counts[arm].astype(jnp.float32))
    return BanditState(values=values, counts=counts, t=state.t + 1)


def select_arm(key: PRNGKey, state: BanditState, policy: str, epsilon: Array, c: Array) -> Array:
    """[] int32 arm for the next round (`policy` static: one of `BANDIT_POLICIES`)."""
    if policy == "ucb":
        return ucb_action(key, state.values, state.counts, state.t + 1, c)
    if policy == "epsilon_greedy":
        return epsilon_greedy(key, state.values, epsilon)
    raise ValueError(f"bandit policy {policy!r} is unknown; choose one of {BANDIT_POLICIES}.")


def run_bandit(key: PRNGKey, policy: str, *, num_arms: int = 10, num_steps: int = 1000,
               epsilon: Array = 0.1, c: Array = 2.0) -> BanditRun:
    """One testbed run: fresh arms, `num_steps` rounds of `policy` (a `lax.scan`).

    `epsilon` and `c` may be traced (sweep them with vmap); `policy` and the sizes are
    static. Returns `BanditRun` with [num_steps] fields.
    """
    if policy not in BANDIT_POLICIES:
        raise ValueError(f"bandit policy {policy!r} is unknown; choose one of {BANDIT_POLICIES}.")
    epsilon = jnp.asarray(epsilon, jnp.float32)
    c = jnp.asarray(c, jnp.float32)
    k_arms, k_rounds = jax.random.split(key)
    q_star = jax.random.normal(k_arms, (num_arms,), jnp.float32)
    best = jnp.argmax(q_star)

    def round_(state, k):
        k_act, k_reward = jax.random.split(k)
        arm = select_arm(k_act, state, policy, epsilon, c)
        reward = q_star[arm] + jax.random.normal(k_reward, (), jnp.float32)
        return bandit_update(state, arm, reward), (reward, arm == best)

    _, (rewards, optimal) = jax.lax.scan(round_, bandit_init(num_arms), jax.random.split(k_rounds, num_steps))
    return BanditRun(rewards=rewards, optimal=optimal)


def run_testbed(key: PRNGKey, policy: str, num_runs: int, *, num_arms: int = 10, num_steps: int = 1000,
                epsilon: Array = 0.1, c: Array = 2.0) -> BanditRun:
    """`num_runs` independent runs (one vmap): `BanditRun` with [num_runs, num_steps] fields."""
    keys = jax.random.split(key, num_runs)
    return jax.vmap(lambda k: run_bandit(k, policy, num_arms=num_arms, num_steps=num_steps,
                                         epsilon=epsilon, c=c))(keys)
