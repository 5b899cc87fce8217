"""One batched model step of a Gaussian ensemble, shared by every algorithm and planner.

`ensemble_step` predicts N rows at once with the elites, grouped so that each elite
runs one dense matrix product over its group (not one matrix-vector product per row);
`sample_prediction` turns those predictions into `(next_obs, reward, terminated)`.

Both take the same step key and read their own streams of `split(key, 4)`: [0] the
assignment of rows to elites, then the observation noise, the reward noise and the
termination draw. One key serves both calls, the four streams stay independent, and
the assignment does not depend on whether the step samples.
"""
from __future__ import annotations

from typing import Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmbrl.models._ensemble import Ensemble, EnsembleConfig, ModelState, Prediction, _to_env_units, model_inputs
from jaxmbrl.models._normaliser import normalise
from jaxmbrl.types import Array, PRNGKey, RewardFn, TerminationFn

ASSIGNMENTS = ("random", "fixed", "mean")


def _step_keys(key: PRNGKey) -> Tuple[PRNGKey, PRNGKey, PRNGKey, PRNGKey]:
    k_assign, k_obs, k_reward, k_term = jax.random.split(key, 4)
    return k_assign, k_obs, k_reward, k_term


def fixed_groups(num_rows: int, num_elites: int) -> Tuple[np.ndarray, np.ndarray]:
    """The static layout of "fixed" assignment: row p goes to group `p * K // N`.

    Groups differ in size by at most one and none is empty while N >= K.

    Returns:
      `(row_of_slot [K * G], slot_of_row [N])` int32 with G = ceil(N / K): slot
      `g * G + j` holds row `row_of_slot[...]` (slots past a group's size repeat a row of
      the group, or row 0, and their predictions are dropped); row p sits in slot
      `slot_of_row[p]`.
    """
    n, k = int(num_rows), int(num_elites)
    group = -(-n // k)
    row_of_slot = np.zeros((k * group,), np.int32)
    slot_of_row = np.zeros((n,), np.int32)
    for g in range(k):
        # Rows with p * K // N == g are those in [ceil(g N / K), ceil((g + 1) N / K)).
        lo, hi = -(-g * n // k), -(-(g + 1) * n // k)
        rows = np.arange(lo, hi, dtype=np.int32)
        slots = g * group + np.arange(hi - lo, dtype=np.int32)
        row_of_slot[g * group: (g + 1) * group] = lo if hi > lo else 0
        row_of_slot[slots] = rows
        slot_of_row[rows] = slots
    return row_of_slot, slot_of_row


def ensemble_step(
    ens: Ensemble,
    mstate: ModelState,
    key: PRNGKey,
    obs: Array,
    action: Array,
    assignment: str = "random",
) -> Prediction:
    """The elites' predictions for N rows, each row by one elite, in environment units.

    Args:
      key: the step key (its assignment stream is used; see the module docstring).
      obs: [N, *obs_shape]; action: [N] int32 (discrete) or [N, A].
      assignment (static):
        "random": every row gets a uniformly random elite, afresh at every call (TS1):
          a random permutation of the N rows, padded to K * G slots (G = ceil(N / K)),
          is cut into K groups of G, so when K divides N every elite gets exactly N / K
          rows;
        "fixed": row p always gets elite `elites[p * K // N]` (TSinf: particle p keeps
          its elite for the whole trajectory);
        "mean": every elite predicts every row and the normalised mean, log-variance
          and termination logit are averaged over the elites (PETS' expectation).

    Returns:
      A `Prediction` with leaves [N, ...].
    """
    if assignment not in ASSIGNMENTS:
        raise ValueError(f"Unknown assignment {assignment!r}; choose one of {ASSIGNMENTS}.")
    cfg = ens.config
    n, k = obs.shape[0], cfg.num_elites
    elite_params = jax.tree.map(lambda p: p[mstate.elites], mstate.params)
    if assignment == "mean":
        x = normalise(mstate.input_norm, model_inputs(cfg, obs, action))
        mean, logvar, term_logit = ens.apply(elite_params, jnp.broadcast_to(x, (k,) + x.shape))
        return _to_env_units(cfg, mstate, obs, mean.mean(0), logvar.mean(0), term_logit.mean(0))
    group = -(-n // k)
    if assignment == "fixed" and n % k == 0:
        # Equal contiguous groups: the fixed layout is a reshape, and gathers in the
        # planner's innermost loop would cost more than the step's elementwise work.
        take = give_back = lambda a: a
    else:
        if assignment == "random":
            perm = jax.random.permutation(_step_keys(key)[0], k * group)
            row_of_slot = perm % n  # pad slots (perm >= n) repeat real rows
            slot_of_row = jnp.argsort(perm)[:n]
        else:
            row_of_slot, slot_of_row = (jnp.asarray(a) for a in fixed_groups(n, k))
        take = lambda a: a[row_of_slot]  # noqa: E731
        give_back = lambda a: a[slot_of_row]  # noqa: E731
    grouped_obs = take(obs).reshape((k, group) + obs.shape[1:])
    grouped_act = take(action).reshape((k, group) + action.shape[1:])
    x = normalise(mstate.input_norm, model_inputs(cfg, grouped_obs, grouped_act))
    mean, logvar, term_logit = ens.apply(elite_params, x)  # [K, G, D], [K, G, D], [K, G]
    back = lambda a: give_back(a.reshape((k * group,) + a.shape[2:]))  # noqa: E731
    return _to_env_units(cfg, mstate, obs, back(mean), back(logvar), back(term_logit))


def sample_prediction(
    cfg: EnsembleConfig,
    key: PRNGKey,
    pred: Prediction,
    obs: Array,
    action: Array,
    *,
    sample: bool = True,
    reward_fn: Optional[RewardFn] = None,
    termination_fn: Optional[TerminationFn] = None,
) -> Tuple[Array, Array, Array]:
    """`(next_obs [N, *obs_shape], reward [N] float32, terminated [N] bool)` from N predictions.

    Args:
      key: the step key (its noise and termination streams are used).
      pred: `ensemble_step`'s `Prediction` [N] for `obs` [N, ...] and `action` [N, ...].
      sample (static): draw the next observation and the learned reward from their
        Gaussians (probabilistic ensembles only) and the learned termination from a
        Bernoulli; otherwise take the means and `probability > 0.5`. The draw keeps
        the imagined termination rate at the predicted one, where a threshold drops
        most terminations of a rare class.
      reward_fn: known `(obs, action, next_obs) -> reward`, applied row by row; None
        uses the learned reward.
      termination_fn: known termination, row by row; None uses the learned head, or
        never terminates without one.
    """
    _, k_obs, k_reward, k_term = _step_keys(key)
    n = obs.shape[0]
    next_obs, reward = pred.next_obs_mean, pred.reward_mean
    if sample and cfg.probabilistic:
        next_obs = next_obs + jnp.exp(0.5 * pred.next_obs_logvar) * jax.random.normal(
            k_obs, next_obs.shape, next_obs.dtype)
        if cfg.learn_reward:
            reward = reward + jnp.exp(0.5 * pred.reward_logvar) * jax.random.normal(
                k_reward, reward.shape, reward.dtype)
    if reward_fn is not None:
        reward = jax.vmap(reward_fn)(obs, action, next_obs)
    if termination_fn is not None:
        terminated = jax.vmap(termination_fn)(obs, action, next_obs)
    elif cfg.learn_termination and sample:
        terminated = jax.random.uniform(k_term, (n,)) < pred.termination_prob
    elif cfg.learn_termination:
        terminated = pred.termination_prob > 0.5
    else:
        terminated = jnp.zeros((n,), jnp.bool_)
    reward = jnp.asarray(reward, jnp.float32).reshape((n,))
    return next_obs, reward, jnp.asarray(terminated, jnp.bool_).reshape((n,))


def member_means(ens: Ensemble, mstate: ModelState, obs: Array, action: Array) -> Array:
    """Every elite's predicted next-observation mean for every row: [K, N, obs_dim] float32.

    In the model's normalised units: the normalised delta `(next_obs - obs - mu) / std`,
    which differs from `next_obs / std` by an offset shared by all members. Its spread
    over members is that of the next-observation means with each dimension divided by
    its target std, so a disagreement (`exploration.disagreement`) weighs every
    dimension alike (MountainCar's velocity varies 20 times less than its position).
    Means, not samples: nothing is drawn and no key is needed.

    Args:
      obs: [N, *obs_shape]; action: [N] int32 (discrete) or [N, A].
    """
    cfg = ens.config
    k, o = cfg.num_elites, cfg.obs_dim
    elite_params = jax.tree.map(lambda p: p[mstate.elites], mstate.params)
    x = normalise(mstate.input_norm, model_inputs(cfg, obs, action))
    mean, _, _ = ens.apply(elite_params, jnp.broadcast_to(x, (k,) + x.shape))  # [K, N, D] normalised
    return mean[..., :o].astype(jnp.float32)
