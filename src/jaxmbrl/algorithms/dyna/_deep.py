"""Deep Dyna-Q: DQN plus one-step synthetic transitions from a learned Gaussian ensemble.

Every env step makes `updates_per_step` DQN updates on real replayed batches, then n
planning updates, each on a synthetic batch: states replayed from the real buffer,
actions from the current epsilon-greedy (or a uniform) policy, and next observation,
reward and termination sampled from a random elite member of the ensemble. The ensemble
(learn_reward, learn_termination, discrete actions) is refit on the whole buffer every
`model_period` env steps, before each block of `model_period` steps. `init` runs
`learning_starts` uniformly random steps, so every `step` is the same compiled iteration.
Without planning (`max_planning_steps=0`) no model is built: the algorithm is DQN.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl import buffers, envs, models
from jaxmbrl.agents import dqn
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
    strong_types,
)
from jaxmbrl.types import Array, PRNGKey, TerminationFn, Transition


class DeepState(NamedTuple):
    key: PRNGKey
    hparams: HParams
    env_state: Any  # gymnax state of the one env
    obs: Array  # [*obs_shape] the observation to act on
    agent: dqn.DQNState
    buffer: buffers.BufferState  # real Transitions [C, ...]
    model: Optional[models.ModelState]  # None without planning
    model_holdout_mse: Array  # [] float32 at the last refit (NaN without a model)
    episodes: EpisodeLog  # the random warm-up's episodes come first
    iteration: Array  # int32
    env_steps: Array  # int32, random warm-up included


def imagine(
    ens: models.Ensemble, key: PRNGKey, mstate: models.ModelState, obs: Array, action: Array,
    sample: bool = True,
    termination_fn: Optional[TerminationFn] = None,
) -> Transition:
    """One-step synthetic transitions for a batch of `(obs [B, *obs_shape], action [B])`.

    Each sample gets a random elite member, balanced: the batch is cut into
    `num_elites` equal groups (padded) and each group is given a distinct elite in random
    order, so every member runs one dense matrix product over its group. Next
    observation and reward are drawn from that member's Gaussian and `terminated` from
    its termination probability (when `sample` is False: the mean, and probability >
    0.5); `truncated` is False. A known `termination_fn(obs, action, next_obs)` replaces
    the learned termination head.
    """
    cfg = ens.config
    batch = obs.shape[0]
    elites = cfg.num_elites
    group = -(-batch // elites)
    k_order, k_noise, k_term = jax.random.split(key, 3)
    order = jax.random.permutation(k_order, mstate.elites)
    member_params = jax.tree.map(lambda p: p[order], mstate.params)
    rows = jnp.arange(group * elites) % batch  # pads by repeating samples
    grouped_obs = obs[rows].reshape((elites, group) + cfg.obs_shape)
    grouped_act = action[rows].reshape((elites, group))
    x = models.normalise(mstate.input_norm, models.model_inputs(cfg, grouped_obs, grouped_act))
    mean, logvar, term_logit = ens.apply(member_params, x)  # [K, G, D], [K, G, D], [K, G]
    flat = lambda a: a.reshape((elites * group,) + a.shape[2:])[:batch]
    mean, logvar, term_logit = flat(mean), flat(logvar), flat(term_logit)
    target = models.denormalise(mstate.target_norm, mean)
    if sample:
        noise = jax.random.normal(k_noise, mean.shape)
        target = target + jnp.exp(0.5 * logvar) * mstate.target_norm.std * noise
        # A Bernoulli draw keeps the synthetic termination rate at the predicted one; a
        # 0.5 threshold drops most terminations of a rare class (CartPole: ~2-5% of
        # transitions), and a missed termination inflates every value it reaches.
        terminated = jax.random.uniform(k_term, term_logit.shape) < jax.nn.sigmoid(term_logit)
    else:
        terminated = term_logit > 0.0
    delta = target[:, : cfg.obs_dim].reshape((batch,) + cfg.obs_shape)
    reward = target[:, cfg.obs_dim] if cfg.learn_reward else jnp.zeros((batch,), jnp.float32)
    next_obs = (obs + delta).astype(obs.dtype)
    if termination_fn is not None:
        terminated = jax.vmap(termination_fn)(obs, action, next_obs)
    return Transition(
        obs=obs,
        action=action,
        reward=reward.astype(jnp.float32),
        next_obs=next_obs,
        terminated=terminated.astype(jnp.bool_),
        truncated=jnp.zeros((batch,), jnp.bool_),
    )


def make_deep(cfg: Config, env, env_params, spec: envs.EnvSpec,
              termination_fn: Optional[TerminationFn] = None) -> Train:
    agent = dqn.make_dqn(
        spec.obs_shape, spec.num_actions, cfg.hidden_sizes, double_q=cfg.double_q,
        huber_delta=cfg.huber_delta, target_update_period=cfg.target_update_period,
    )
    ens = None
    if cfg.planning:
        ens = models.make_ensemble(
            spec.obs_shape, spec.num_actions, cfg.num_members, cfg.num_model_elites,
            cfg.model_hidden_sizes, discrete_actions=True, learn_reward=True, learn_termination=True,
        )
    steps_per_chunk = cfg.model_period if cfg.planning else cfg.steps_per_iteration
    num_chunks = cfg.steps_per_iteration // steps_per_chunk
    capacity = cfg.buffer_size or cfg.learning_starts + cfg.num_iterations * cfg.steps_per_iteration
    planning_batch = cfg.planning_batch_size or cfg.batch_size
    eval_steps = cfg.eval_max_steps or spec.max_steps

    def schedule(hp: HParams):
        return dqn.epsilon_schedule(hp.epsilon_start, hp.epsilon, cfg.epsilon_decay_steps)

    def refit(state: DeepState) -> DeepState:
        key, k_fit = jax.random.split(state.key)
        model, info = models.fit(
            ens, state.model, k_fit, state.buffer, epochs=cfg.model_epochs,
            batch_size=cfg.model_batch_size, holdout_ratio=state.hparams.holdout_ratio,
            max_holdout=cfg.max_holdout, patience=cfg.model_patience,
        )
        mse = info.best_holdout_mse[model.elites].mean()
        return state._replace(key=key, model=model, model_holdout_mse=mse)

    def real_updates(key, agent_state, buffer, hp):
        def one(agent_state, k):
            batch = buffers.sample(k, buffer, cfg.batch_size)
            return agent.update(agent_state, batch, hp.discount, hp.target_tau)

        agent_state, info = jax.lax.scan(one, agent_state, jax.random.split(key, cfg.updates_per_step))
        return agent_state, jax.tree.map(jnp.mean, info)

    def planning_updates(key, agent_state, buffer, model, hp, epsilon, n):
        def one(i, agent_state):
            k_obs, k_act, k_model = jax.random.split(jax.random.fold_in(key, i), 3)
            obs = buffers.gather(buffer, buffers.sample_indices(k_obs, buffer, planning_batch)).obs
            act_keys = jax.random.split(k_act, planning_batch)
            if cfg.planning_policy == "uniform":
                action = jax.vmap(envs.random_action, in_axes=(0, None))(act_keys, spec)
            else:
                action = jax.vmap(agent.act, in_axes=(0, None, 0, None))(act_keys, agent_state.params, obs, epsilon)
            synthetic = imagine(ens, k_model, model, obs, action, termination_fn=termination_fn)
            agent_state, _ = agent.update(agent_state, synthetic, hp.discount, hp.target_tau)
            return agent_state

        # Traced trip count: under vmap over n it runs to the largest n, lanes masked.
        return jax.lax.fori_loop(0, n, one, agent_state)

    def env_step(state: DeepState, key: PRNGKey):
        hp = state.hparams
        k_act, k_env, k_real, k_plan = jax.random.split(key, 4)
        epsilon = schedule(hp)(state.env_steps)
        action = agent.act(k_act, state.agent.params, state.obs, epsilon)
        transition, obs, env_state = envs.step(env, env_params, k_env, state.env_state, state.obs, action)
        buffer = buffers.add(state.buffer, jax.tree.map(lambda x: x[None], transition))
        agent_state, info = real_updates(k_real, state.agent, buffer, hp)
        n = jnp.zeros((), jnp.int32)
        if cfg.planning:
            n = num_planning_steps(hp, cfg.max_planning_steps)
            agent_state = planning_updates(k_plan, agent_state, buffer, state.model, hp, epsilon, n)
        log, ended = log_step(state.episodes, transition.reward, transition.terminated | transition.truncated)
        state = state._replace(env_state=env_state, obs=obs, agent=agent_state, buffer=buffer,
                               episodes=log, env_steps=state.env_steps + 1)
        return state, (ended, info, n, epsilon)

    def chunk(state: DeepState, _):
        # Refitting first keeps `init` free of a second copy of the fit in the program.
        if cfg.planning:
            state = refit(state)
        key, k_steps = jax.random.split(state.key)
        return jax.lax.scan(env_step, state._replace(key=key), jax.random.split(k_steps, steps_per_chunk))

    def evaluate(key: PRNGKey, params) -> Array:
        """Mean return of `eval_episodes` greedy episodes (cut at `eval_steps`)."""
        k_reset, k_steps = jax.random.split(key)
        obs, env_state = envs.batch_reset(env, env_params, k_reset, cfg.eval_episodes)

        def body(carry, k):
            obs, env_state, ret, alive = carry
            k_act, k_env = jax.random.split(k)
            act_keys = jax.random.split(k_act, cfg.eval_episodes)
            action = jax.vmap(agent.act, in_axes=(0, None, 0, None))(act_keys, params, obs, 0.0)
            tr, obs, env_state = envs.batch_step(env, env_params, k_env, env_state, obs, action)
            ret = ret + jnp.where(alive, tr.reward, 0.0)
            alive = alive & ~(tr.terminated | tr.truncated)
            return (obs, env_state, ret, alive), None

        carry = (obs, env_state, jnp.zeros((cfg.eval_episodes,), jnp.float32),
                 jnp.ones((cfg.eval_episodes,), jnp.bool_))
        (_, _, ret, _), _ = jax.lax.scan(body, carry, jax.random.split(k_steps, eval_steps))
        return ret.mean()

    def init(key: PRNGKey, hp: HParams) -> DeepState:
        hp = as_float_hparams(hp)
        k_env, k_agent, k_model, k_warm, k_run = jax.random.split(key, 5)
        obs, env_state = envs.reset(env, env_params, k_env)
        obs, env_state = strong_types(obs), strong_types(env_state)
        example = Transition(
            obs=obs, action=jnp.zeros((), jnp.int32), reward=jnp.zeros((), jnp.float32), next_obs=obs,
            terminated=jnp.zeros((), jnp.bool_), truncated=jnp.zeros((), jnp.bool_),
        )
        model = None
        if cfg.planning:
            model = models.init_model(ens, k_model, example, learning_rate=hp.model_learning_rate)
            model.opt_state.hyperparams["weight_decay"] = hp.model_weight_decay

        def random_step(carry, k):
            env_state, obs, buffer, log = carry
            k_act, k_env = jax.random.split(k)
            action = envs.random_action(k_act, spec)
            tr, obs, env_state = envs.step(env, env_params, k_env, env_state, obs, action)
            buffer = buffers.add(buffer, jax.tree.map(lambda x: x[None], tr))
            log, _ = log_step(log, tr.reward, tr.terminated | tr.truncated)
            return (env_state, obs, buffer, log), None

        carry = (env_state, obs, buffers.init(capacity, example), episode_log(cfg.max_episodes))
        (env_state, obs, buffer, log), _ = jax.lax.scan(
            random_step, carry, jax.random.split(k_warm, cfg.learning_starts)
        )
        return DeepState(
            key=k_run, hparams=hp, env_state=env_state, obs=obs,
            agent=agent.init(k_agent, hp.learning_rate), buffer=buffer, model=model,
            model_holdout_mse=jnp.full((), jnp.nan, jnp.float32), episodes=log,
            iteration=jnp.zeros((), jnp.int32), env_steps=jnp.asarray(cfg.learning_starts, jnp.int32),
        )

    def step(state: DeepState) -> Tuple[DeepState, Metrics]:
        state, (ended, info, n, epsilon) = jax.lax.scan(chunk, state, None, length=num_chunks)
        flat = lambda a: a.reshape((-1,) + a.shape[2:])
        ended, info, n, epsilon = jax.tree.map(flat, (ended, info, n, epsilon))
        count, mean_len, mean_ret = episode_stats(*ended)
        key, k_eval = jax.random.split(state.key)
        if cfg.eval_episodes:
            eval_return = evaluate(k_eval, state.agent.params)
        else:
            eval_return = jnp.full((), jnp.nan, jnp.float32)
        metrics = Metrics(
            iteration=state.iteration, env_steps=state.env_steps, episodes=count,
            episode_length=mean_len, episode_return=mean_ret, eval_return=eval_return,
            epsilon=epsilon[-1], td_error=info.td_abs.mean(), q_loss=info.loss.mean(),
            model_holdout_mse=state.model_holdout_mse, planning_updates=n.sum(dtype=jnp.int32),
        )
        return state._replace(key=key, iteration=state.iteration + 1), metrics

    def run(key: PRNGKey, hp: HParams) -> Tuple[DeepState, Metrics]:
        state = init(key, hp)
        return jax.lax.scan(lambda s, _: step(s), state, None, length=cfg.num_iterations)

    return Train(cfg, init, step, run)
