"""Deep Dyna-Q: DQN plus one-step synthetic transitions from a learned model.

Every env step makes `policy_updates_per_step` DQN updates on real replayed batches, then
n planning updates, each on a synthetic batch: states replayed from the real buffer,
actions from the current epsilon-greedy (or a uniform) policy, and next observation,
reward and termination from the model (by default the Gaussian ensemble with learned
reward and termination heads, each row a random elite, termination a Bernoulli draw:
a 0.5 threshold would drop most terminations of a rare class, and a missed termination
inflates every value it reaches). The model is refit on the whole buffer every
`model_train_every` env steps, before each block of that many steps. `init` runs
`warmup_steps` uniformly random steps, so every `step` is the same compiled iteration.
Without planning (`max_planning_steps=0`) no model is built: the algorithm is DQN.
"""
from __future__ import annotations

from typing import Any, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl import buffers, envs, models
from jaxmbrl.agents import dqn
from jaxmbrl.algorithms._contract import evaluate
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
from jaxmbrl.types import Array, PRNGKey, TerminationFn, Transition


class DeepState(NamedTuple):
    """A deep Dyna-Q run between iterations: DQN agent, learned model, replay, one env (one seed)."""

    key: PRNGKey
    hparams: HParams
    env_state: Any  # gymnax state of the one env
    obs: Array  # [*obs_shape] the observation to act on
    agent: dqn.DQNState
    buffer: buffers.BufferState  # real Transitions [C, ...]
    model: Any  # the model's state (models.ModelState for the ensemble); None without planning
    model_holdout_mse: Array  # [] float32 at the last refit (NaN without a model)
    episodes: EpisodeLog  # the random warm-up's episodes come first
    iteration: Array  # int32
    env_steps: Array  # int32, random warm-up included


def default_model(cfg: Config, spec: envs.EnvSpec,
                  termination_fn: Optional[TerminationFn] = None) -> models.Model:
    """The Gaussian ensemble of `cfg` with learned reward and termination heads."""
    ens = models.make_ensemble(
        spec.obs_shape, spec.num_actions, cfg.num_members, cfg.num_model_elites,
        cfg.model_hidden_sizes, discrete_actions=True, learn_reward=True, learn_termination=True,
        activation=cfg.model_activation, compute_dtype=cfg.model_compute_dtype,
    )
    return models.ensemble_model(
        ens, propagation="ts1", sample=True, termination_fn=termination_fn, epochs=cfg.model_epochs,
        batch_size=cfg.model_batch_size, patience=cfg.model_patience, max_holdout=cfg.max_holdout)


def make_deep(cfg: Config, env, env_params, spec: envs.EnvSpec,
              termination_fn: Optional[TerminationFn] = None, model: Optional[models.Model] = None) -> Train:
    agent = dqn.make_dqn(
        spec.obs_shape, spec.num_actions, cfg.policy_hidden_sizes, double_q=cfg.double_q,
        huber_delta=cfg.huber_delta, target_update_period=cfg.target_update_period,
    )
    if cfg.planning and model is None:
        model = default_model(cfg, spec, termination_fn)
    if not cfg.planning:
        model = None
    steps_per_chunk = cfg.model_train_every if cfg.planning else cfg.steps_per_iteration
    num_chunks = cfg.steps_per_iteration // steps_per_chunk
    capacity = cfg.buffer_capacity or cfg.warmup_steps + cfg.num_iterations * cfg.steps_per_iteration
    planning_batch = cfg.planning_batch_size or cfg.policy_batch_size
    eval_steps = cfg.eval_max_steps or spec.max_steps

    def model_hparams(hp: HParams) -> models.ModelHParams:
        return models.ModelHParams(hp.model_learning_rate, hp.model_weight_decay, hp.holdout_ratio)

    def schedule(hp: HParams):
        return dqn.epsilon_schedule(hp.epsilon_start, hp.epsilon, cfg.epsilon_decay_steps)

    def refit(state: DeepState) -> DeepState:
        key, k_fit = jax.random.split(state.key)
        with jax.named_scope("model_fit"):
            model_state, info = model.fit(k_fit, state.model, state.buffer, model_hparams(state.hparams))
        return state._replace(key=key, model=model_state,
                              model_holdout_mse=jnp.asarray(info.holdout_mse, jnp.float32))

    def real_updates(key, agent_state, buffer, hp):
        def one(agent_state, k):
            batch = buffers.sample(k, buffer, cfg.policy_batch_size)
            return agent.update(agent_state, batch, hp.discount, hp.target_tau)

        agent_state, info = jax.lax.scan(one, agent_state, jax.random.split(key, cfg.policy_updates_per_step))
        return agent_state, jax.tree.map(jnp.mean, info)

    def planning_updates(key, agent_state, buffer, model_state, hp, epsilon, n):
        def one(i, agent_state):
            k_obs, k_act, k_model = jax.random.split(jax.random.fold_in(key, i), 3)
            obs = buffers.gather(buffer, buffers.sample_indices(k_obs, buffer, planning_batch)).obs
            act_keys = jax.random.split(k_act, planning_batch)
            if cfg.planning_policy == "uniform":
                action = jax.vmap(envs.random_action, in_axes=(0, None))(act_keys, spec)
            else:
                action = jax.vmap(agent.act, in_axes=(0, None, 0, None))(act_keys, agent_state.params, obs, epsilon)
            next_obs, reward, terminated = model.step(k_model, model_state, obs, action)
            synthetic = Transition(obs, action, reward, next_obs.astype(obs.dtype), terminated,
                                           jnp.zeros_like(terminated))
            agent_state, _ = agent.update(agent_state, synthetic, hp.discount, hp.target_tau)
            return agent_state

        # Traced trip count: under vmap over n it runs to the largest n, lanes masked.
        return jax.lax.fori_loop(0, n, one, agent_state)

    def env_step(state: DeepState, key: PRNGKey):
        hp = state.hparams
        k_act, k_env, k_real, k_plan = jax.random.split(key, 4)
        epsilon = schedule(hp)(state.env_steps)
        with jax.named_scope("act"):
            action = agent.act(k_act, state.agent.params, state.obs, epsilon)
        with jax.named_scope("env"):
            transition, obs, env_state = envs.step(env, env_params, k_env, state.env_state, state.obs, action)
        buffer = buffers.add(state.buffer, jax.tree.map(lambda x: x[None], transition))
        with jax.named_scope("policy_update"):
            agent_state, info = real_updates(k_real, state.agent, buffer, hp)
        n = jnp.zeros((), jnp.int32)
        if cfg.planning:
            n = num_planning_steps(hp, cfg.max_planning_steps)
            # Dyna's planning: Q-updates on transitions the model imagines.
            with jax.named_scope("model_rollout"):
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

    def greedy_policy(state: DeepState, n: int):
        del n  # the greedy Q action keeps no state between steps

        def act(k, obs, policy_state, is_first):
            del is_first
            keys = jax.random.split(k, obs.shape[0])
            return jax.vmap(agent.act, in_axes=(0, None, 0, None))(keys, state.agent.params, obs, 0.0), policy_state

        return act, None

    def greedy_return(key: PRNGKey, state: DeepState) -> Array:
        return evaluate(env, env_params, key, *greedy_policy(state, cfg.num_eval_episodes), cfg.num_eval_episodes,
                        eval_steps)

    def init(key: PRNGKey, hp: HParams) -> DeepState:
        hp = as_float_hparams(hp)
        k_env, k_agent, k_model, k_warm, k_run = jax.random.split(key, 5)
        obs, env_state = envs.reset(env, env_params, k_env)
        example = envs.example_transition(spec, obs)
        model_state = model.init(k_model, example, model_hparams(hp)) if cfg.planning else None

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
            random_step, carry, jax.random.split(k_warm, cfg.warmup_steps)
        )
        return DeepState(
            key=k_run, hparams=hp, env_state=env_state, obs=obs,
            agent=agent.init(k_agent, hp.learning_rate), buffer=buffer, model=model_state,
            model_holdout_mse=jnp.full((), jnp.nan, jnp.float32), episodes=log,
            iteration=jnp.zeros((), jnp.int32), env_steps=jnp.asarray(cfg.warmup_steps, jnp.int32),
        )

    def step(state: DeepState) -> Tuple[DeepState, Metrics]:
        state, (ended, info, n, epsilon) = jax.lax.scan(chunk, state, None, length=num_chunks)
        flat = lambda a: a.reshape((-1,) + a.shape[2:])
        ended, info, n, epsilon = jax.tree.map(flat, (ended, info, n, epsilon))
        count, mean_len, mean_ret = episode_stats(*ended)
        key, k_eval = jax.random.split(state.key)
        if cfg.num_eval_episodes:
            with jax.named_scope("eval"):
                eval_return = greedy_return(k_eval, state)
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

    return Train(cfg, init, step, run, model, spec, greedy_policy)
