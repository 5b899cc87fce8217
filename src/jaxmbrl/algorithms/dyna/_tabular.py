"""Tabular Dyna-Q (Sutton & Barto, 2nd ed., section 8.2).

Every real step makes one Q-learning update, records the transition in a deterministic
model table (the last outcome seen for each state-action pair), then makes n planning
updates, each on a state-action pair drawn uniformly from those seen so far. Actions are
epsilon-greedy with ties broken at random.

Exploration from the model's uncertainty about time (section 8.3) and from counts
(section 2.7):

  * Dyna-Q+ (`HParams.bonus_kappa` = kappa > 0): the model also keeps the env step at
    which each pair was last tried, and a planning update uses the reward
    `r + kappa * sqrt(tau)`, tau the steps since then. Planning then draws a visited
    state and any of its actions uniformly (the book's footnote): an action never tried
    there is modelled as leading back to the same state with reward 0, and its tau counts
    from the start of the run. kappa = 0 is plain Dyna-Q, update for update.
  * `Config.exploration="ucb"`: the real action is `argmax_a Q(s, a) + c * sqrt(ln t /
    N(s, a))` (`exploration.ucb_action`; t the 1-based env step, N the real tries, an
    untried action first) instead of epsilon-greedy.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl import envs
from jaxmbrl.agents.dqn import epsilon_greedy, epsilon_schedule
from jaxmbrl.algorithms.dyna._config import (
    Config,
    EpisodeLog,
    HParams,
    Metrics,
    Train,
    as_float_hparams,
    episode_log,
    episode_stats,
    log_step,
    num_planning_steps,
)
from jaxmbrl.envs._dyna_maze import state_index
from jaxmbrl.exploration._bandit import ucb_action
from jaxmbrl.types import Array, PRNGKey


class TabularModel(NamedTuple):
    """The last outcome of every state-action pair: tables [S, A]."""

    next_state: Array  # int32
    reward: Array  # float32
    terminated: Array  # bool
    seen: Array  # bool: whether the pair has been tried
    # Flat ids (s * A + a) of the tried pairs in the order first tried, so that a
    # uniform draw over them costs one random integer instead of one per table cell.
    pairs: Array  # [S * A] int32; entries past num_seen are unused
    num_seen: Array  # [] int32
    # Dyna-Q+ and UCB: the env step count (State.env_steps after the step) at which each
    # pair was last tried (0: never), and how often.
    last_tried: Array  # [S, A] int32
    count: Array  # [S, A] int32
    # Visited states in the order first visited, for Dyna-Q+'s uniform draw over them.
    visited: Array  # [S] int32; entries past num_visited are unused
    num_visited: Array  # [] int32


class TabularState(NamedTuple):
    """A tabular Dyna-Q run between iterations: Q table, deterministic model, one env (one seed)."""

    key: PRNGKey
    hparams: HParams
    env_state: Any  # gymnax state of the one env
    obs: Array  # [*obs_shape] the observation to act on
    q: Array  # [S, A] float32
    model: TabularModel
    episodes: EpisodeLog
    iteration: Array  # int32
    env_steps: Array  # int32


def q_learning_update(
    q: Array, s: Array, a: Array, reward: Array, next_s: Array, terminated: Array,
    alpha: Array, discount: Array,
) -> Tuple[Array, Array]:
    """One tabular Q-learning update.

    `Q(s, a) += alpha * (r + discount * (1 - terminated) * max_a' Q(s', a') - Q(s, a))`.

    Args:
      q: [S, A] table; s, a, next_s: [] int32; reward: [] float; terminated: [] bool.
    Returns:
      `(q, td_error [])`.
    """
    bootstrap = jnp.where(terminated, 0.0, q[next_s].max())
    td = reward + discount * bootstrap - q[s, a]
    return q.at[s, a].add(alpha * td), td


def empty_model(num_states: int, num_actions: int) -> TabularModel:
    shape = (num_states, num_actions)
    return TabularModel(
        next_state=jnp.zeros(shape, jnp.int32),
        reward=jnp.zeros(shape, jnp.float32),
        terminated=jnp.zeros(shape, jnp.bool_),
        seen=jnp.zeros(shape, jnp.bool_),
        pairs=jnp.zeros((num_states * num_actions,), jnp.int32),
        num_seen=jnp.zeros((), jnp.int32),
        last_tried=jnp.zeros(shape, jnp.int32),
        count=jnp.zeros(shape, jnp.int32),
        visited=jnp.zeros((num_states,), jnp.int32),
        num_visited=jnp.zeros((), jnp.int32),
    )


def record(model: TabularModel, s: Array, a: Array, reward: Array, next_s: Array, terminated: Array,
           step: Array = None) -> TabularModel:
    """Stores the latest outcome of `(s, a)` (the model is deterministic: last seen wins).

    `step` ([] int32, optional): the env step count at this try, kept in `last_tried`
    for Dyna-Q+'s bonus (left as it was when not given).
    """
    num_actions = model.seen.shape[1]
    new = ~model.seen[s, a]
    slot = jnp.where(new, model.num_seen, model.pairs.shape[0])  # past the end: no write
    new_state = ~model.seen[s].any()
    state_slot = jnp.where(new_state, model.num_visited, model.visited.shape[0])
    last_tried = model.last_tried if step is None else model.last_tried.at[s, a].set(jnp.asarray(step, jnp.int32))
    return TabularModel(
        next_state=model.next_state.at[s, a].set(next_s),
        reward=model.reward.at[s, a].set(reward),
        terminated=model.terminated.at[s, a].set(terminated),
        seen=model.seen.at[s, a].set(True),
        pairs=model.pairs.at[slot].set(s * num_actions + a, mode="drop"),
        num_seen=model.num_seen + new.astype(jnp.int32),
        last_tried=last_tried,
        count=model.count.at[s, a].add(1),
        visited=model.visited.at[state_slot].set(s, mode="drop"),
        num_visited=model.num_visited + new_state.astype(jnp.int32),
    )


def planning_update(key: PRNGKey, q: Array, model: TabularModel, alpha: Array, discount: Array) -> Array:
    """One Q-learning update on a tried state-action pair drawn uniformly, replayed by the model."""
    return replay_pair(q, model, jax.random.randint(key, (), 0, jnp.maximum(model.num_seen, 1)), alpha, discount)


def replay_pair(q: Array, model: TabularModel, index: Array, alpha: Array, discount: Array) -> Array:
    """The Q-learning update on the `index`-th tried pair (`model.pairs[index]`)."""
    pair = model.pairs[index]
    s, a = pair // q.shape[1], pair % q.shape[1]
    q, _ = q_learning_update(q, s, a, model.reward[s, a], model.next_state[s, a],
                             model.terminated[s, a], alpha, discount)
    return q


def simulate(model: TabularModel, s: Array, a: Array) -> Tuple[Array, Array, Array]:
    """The model's `(next_state, reward, terminated)` for `(s, a)`; an untried pair stays
    in `s` with reward 0 (Dyna-Q+'s initial model of untried actions)."""
    seen = model.seen[s, a]
    return (jnp.where(seen, model.next_state[s, a], s), jnp.where(seen, model.reward[s, a], 0.0),
            model.terminated[s, a] & seen)


def exploration_bonus(model: TabularModel, s: Array, a: Array, now: Array, kappa: Array) -> Array:
    """[] float32 Dyna-Q+'s `kappa * sqrt(tau)`, tau = `now - last_tried[s, a]` env steps."""
    tau = jnp.maximum(jnp.asarray(now, jnp.int32) - model.last_tried[s, a], 0).astype(jnp.float32)
    return (kappa * jnp.sqrt(tau)).astype(jnp.float32)


def bonus_planning_update(q: Array, model: TabularModel, s: Array, a: Array, alpha: Array, discount: Array,
                          kappa: Array, now: Array) -> Array:
    """One planning update on `(s, a)` with reward `r + kappa * sqrt(tau)` (Dyna-Q+).

    With kappa = 0 on a tried pair this is exactly the plain update (`replay_pair`).
    Args: q [S, A]; s, a, now: [] int32 (now: the env step count); alpha, discount, kappa: [].
    """
    next_s, reward, terminated = simulate(model, s, a)
    q, _ = q_learning_update(q, s, a, reward + exploration_bonus(model, s, a, now, kappa), next_s,
                             terminated, alpha, discount)
    return q


def planning_pairs(key: PRNGKey, model: TabularModel, num: int, plus: Array) -> Tuple[Array, Array]:
    """`num` planning pairs `(s [num], a [num])`: drawn uniformly from the tried pairs, or,
    where `plus` ([] bool, Dyna-Q+) holds, a uniform visited state and a uniform action.

    The tried-pair draw uses `key` exactly as plain Dyna-Q always has, so kappa = 0 runs
    repeat the old ones bit for bit.
    """
    num_actions = model.seen.shape[1]
    picks = model.pairs[jax.random.randint(key, (num,), 0, model.num_seen)]
    k_state, k_action = jax.random.split(jax.random.fold_in(key, 1))
    states = model.visited[jax.random.randint(k_state, (num,), 0, jnp.maximum(model.num_visited, 1))]
    actions = jax.random.randint(k_action, (num,), 0, num_actions, dtype=jnp.int32)
    s = jnp.where(plus, states, picks // num_actions)
    a = jnp.where(plus, actions, picks % num_actions)
    return s, a


def make_tabular(cfg: Config, env, env_params, spec: envs.EnvSpec, num_states: int) -> Train:
    num_actions = spec.num_actions

    def env_step(state: TabularState, key: PRNGKey):
        hp = state.hparams
        k_act, k_env, k_plan = jax.random.split(key, 3)
        epsilon = epsilon_schedule(hp.epsilon_start, hp.epsilon, cfg.epsilon_decay_steps)(state.env_steps)
        s = state_index(state.obs)
        now = state.env_steps + 1  # the env step count once this step is taken
        if cfg.exploration == "ucb":
            action = ucb_action(k_act, state.q[s], state.model.count[s], now, hp.ucb_c)
        else:
            action = epsilon_greedy(k_act, state.q[s], epsilon)
        transition, obs, env_state = envs.step(env, env_params, k_env, state.env_state, state.obs, action)
        next_s = state_index(transition.next_obs)
        q, td = q_learning_update(state.q, s, action, transition.reward, next_s, transition.terminated,
                                  hp.learning_rate, hp.discount)
        model = record(state.model, s, action, transition.reward, next_s, transition.terminated, step=now)
        n = num_planning_steps(hp, cfg.max_planning_steps)
        # All draws at once; the updates themselves are sequential. kappa is traced, so
        # Dyna-Q and Dyna-Q+ lanes of one vmapped program each take their own draws.
        plan_s, plan_a = planning_pairs(k_plan, model, cfg.max_planning_steps, hp.bonus_kappa > 0)
        # A loop with a traced trip count: under vmap over n it runs to the largest n
        # and masks the finished lanes, so one program serves every n.
        q = jax.lax.fori_loop(
            0, n, lambda i, q: bonus_planning_update(q, model, plan_s[i], plan_a[i], hp.learning_rate,
                                                     hp.discount, hp.bonus_kappa, now), q
        )
        log, ended = log_step(state.episodes, transition.reward, transition.terminated | transition.truncated)
        state = state._replace(env_state=env_state, obs=obs, q=q, model=model, episodes=log,
                               env_steps=state.env_steps + 1)
        return state, (ended, jnp.abs(td), n, epsilon)

    def init(key: PRNGKey, hp: HParams) -> TabularState:
        hp = as_float_hparams(hp)
        k_env, k_run = jax.random.split(key)
        obs, env_state = envs.reset(env, env_params, k_env)
        return TabularState(
            key=k_run, hparams=hp, env_state=env_state, obs=obs,
            q=jnp.zeros((num_states, num_actions), jnp.float32),
            model=empty_model(num_states, num_actions),
            episodes=episode_log(cfg.max_episodes),
            iteration=jnp.zeros((), jnp.int32), env_steps=jnp.zeros((), jnp.int32),
        )

    def step(state: TabularState) -> Tuple[TabularState, Metrics]:
        key, k_steps = jax.random.split(state.key)
        state = state._replace(key=key)
        state, (ended, td_abs, n, epsilon) = jax.lax.scan(
            env_step, state, jax.random.split(k_steps, cfg.steps_per_iteration)
        )
        count, mean_len, mean_ret = episode_stats(*ended)
        nan = jnp.full((), jnp.nan, jnp.float32)
        metrics = Metrics(
            iteration=state.iteration, env_steps=state.env_steps, episodes=count,
            episode_length=mean_len, episode_return=mean_ret, eval_return=nan,
            epsilon=epsilon[-1], td_error=td_abs.mean(), q_loss=nan, model_holdout_mse=nan,
            planning_updates=n.sum(dtype=jnp.int32),
        )
        return state._replace(iteration=state.iteration + 1), metrics

    def run(key: PRNGKey, hp: HParams) -> Tuple[TabularState, Metrics]:
        state = init(key, hp)
        return jax.lax.scan(lambda s, _: step(s), state, None, length=cfg.num_iterations)

    def greedy_policy(state: TabularState, n: int):
        del n

        def act(k, obs, policy_state, is_first):
            del is_first
            values = state.q[jax.vmap(state_index)(obs)]  # [n, A]
            zero = jnp.zeros((), jnp.float32)
            return jax.vmap(epsilon_greedy, in_axes=(0, 0, None))(jax.random.split(k, obs.shape[0]), values,
                                                                  zero), policy_state

        return act, None

    return Train(cfg, init, step, run, None, spec, greedy_policy)
