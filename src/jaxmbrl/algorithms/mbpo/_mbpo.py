"""MBPO: model-based policy optimisation (Janner et al. 2019), compiled end to end.

One iteration = `steps_per_iteration` vectorised env steps, a `lax.scan` over blocks of
`model_train_every` steps. Each block refits the ensemble on all real data, branches
`rollouts_per_step * model_train_every * num_envs` k-step model rollouts from real
states into the model buffer (replacing the oldest batch once `model_retain_blocks` are
held), then steps the envs with the SAC policy, doing `policy_updates_per_step` SAC updates
per step on batches that mix real and model data by `real_ratio` (optionally moved
linearly to `real_ratio_end` over `real_ratio_decay_steps` env steps; the target
critics' Polyak rate `target_tau` moves the same way to `target_tau_end`). With
`exploration="disagreement"` every imagined reward gains `intrinsic_reward` times the
ensemble's disagreement at (s, a) (the variance over elites of their predicted next
observations: Pathak et al. 2019), optionally decayed linearly to `intrinsic_reward_end`
over `intrinsic_reward_decay_steps` env steps. The first
`warmup_iterations` act uniformly at random without learning; `init` runs them, so
every `step` is the same compiled iteration. After each iteration the greedy policy is
evaluated on `num_eval_episodes` fresh episodes.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, Mapping, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl import buffers, envs, models
from jaxmbrl.agents import sac as sac_lib
from jaxmbrl.algorithms._contract import (
    MODEL_RANGES,
    NON_NEGATIVE,
    POSITIVE,
    RATE,
    UNIT,
    ConfigBase,
    as_float32,
    batch_policy,
    check_bonus_unused,
    evaluate,
    resolve_env,
    termination_or_never,
)
from jaxmbrl.algorithms._episodes import run_after_warmup, track_episodes
from jaxmbrl.algorithms.mbpo._rollout import (
    ModelBuffer,
    bonus_rollout,
    branched_rollout,
    model_buffer_add,
    model_buffer_init,
    model_buffer_sample,
    rollout_length,
)
from jaxmbrl.exploration._uncertainty import linear_decay
from jaxmbrl.types import Array, PRNGKey, Range

EXPLORATIONS = ("none", "disagreement")


class HParams(NamedTuple):
    """Float hyperparameters, traced: `jax.vmap(train.run)(keys, hparams)` sweeps them."""

    real_ratio: Any = 0.05  # fraction of each SAC batch drawn from real data
    # Where real_ratio moves to, linearly, over Config.real_ratio_decay_steps env steps
    # (0: real_ratio throughout). E.g. 1 -> 0.05 keeps the first, least accurate models'
    # rollouts out of SAC's early batches.
    real_ratio_end: Any = 0.05
    actor_learning_rate: Any = 3e-4
    critic_learning_rate: Any = 3e-4
    # 0 fixes the temperature at init_alpha (mbrl-lib 0.2.0's Hopper: tuning off, 0.2).
    alpha_learning_rate: Any = 3e-4
    discount: Any = 0.99
    target_tau: Any = 0.005
    # Where target_tau moves to, linearly, over Config.target_tau_decay_steps env steps
    # (0: target_tau throughout). E.g. 0.005 -> 0.00125: fast targets while the policy
    # first learns, slower ones once the critic should settle.
    target_tau_end: Any = 0.005
    init_alpha: Any = 1.0
    model_learning_rate: Any = 1e-3
    model_weight_decay: Any = 5e-5
    holdout_ratio: Any = 0.2
    # Coefficient of the disagreement bonus in imagined rewards (exploration="disagreement");
    # it decays linearly to intrinsic_reward_end over Config.intrinsic_reward_decay_steps.
    intrinsic_reward: Any = 0.0
    intrinsic_reward_end: Any = 0.0

    def sac(self) -> sac_lib.SACHParams:
        return sac_lib.SACHParams(self.actor_learning_rate, self.critic_learning_rate,
                                  self.alpha_learning_rate, self.discount, self.target_tau, self.init_alpha)


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    """Static MBPO configuration: shapes, counts and names (changing one recompiles).

    The defaults are the Pendulum-v1 run of `scripts/mbpo_pendulum.py` (mbrl-lib's MBPO
    Pendulum settings: 7/5 ensemble, k = 1, 400 rollouts and 20 SAC updates per step).
    `steps_per_iteration` and `model_train_every` count vectorised steps: each is
    `num_envs` env steps.
    """

    NAME = "mbpo"
    HPARAMS = HParams

    env_id: str = "Pendulum-v1"
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    num_envs: int = 1
    num_iterations: int = 25  # in total, warm-up ones included
    warmup_iterations: int = 5
    steps_per_iteration: int = 200
    model_train_every: int = 200  # must divide steps_per_iteration
    buffer_capacity: int = 0  # real transitions kept; 0: every step of the run
    # Imagination.
    rollouts_per_step: int = 400
    rollout_schedule: Tuple[int, int, int, int] = (1, 15, 1, 1)  # start/end epoch, min/max k
    # Refits whose rollouts the model buffer keeps. Janner et al.'s and mbrl-lib's
    # "model_retain_epochs = 1" is one epoch of refits: steps_per_iteration //
    # model_train_every blocks (4 on their 1,000-step MuJoCo epochs, 1 on Pendulum here).
    model_retain_blocks: int = 1
    # SAC.
    policy_updates_per_step: int = 20
    policy_batch_size: int = 256
    policy_hidden_sizes: Tuple[int, ...] = (256, 256)
    policy_compute_dtype: str = "float32"  # or "bfloat16" products (sac.make_sac)
    # SAC's temperature target; None: -A. Janner et al.'s configs set -0.05 on
    # InvertedPendulum (A = 1), where -1 keeps the policy noisier than balancing allows.
    target_entropy: Optional[float] = None
    # Dynamics model.
    num_members: int = 7
    num_model_elites: int = 5
    model_hidden_sizes: Tuple[int, ...] = (200, 200, 200, 200)
    model_activation: str = "silu"  # models.ACTIVATIONS
    model_compute_dtype: str = "float32"  # or "bfloat16" products (models.make_ensemble)
    # False: imagined rewards come from the env's known reward function (envs.reward_fn),
    # exact where a sparse reward (MountainCar's +100 at the flag) is hard to regress.
    learn_reward: bool = True
    model_epochs: int = 25
    model_batch_size: int = 256
    model_patience: int = 5
    max_holdout: int = 2000
    # Evaluation.
    num_eval_episodes: int = 5
    # Exploration from model uncertainty. "disagreement" adds HParams.intrinsic_reward x
    # the elites' disagreement to every imagined reward. A static switch, because the
    # bonus evaluates every elite on every imagined row (K times a rollout's model work),
    # which a traced coefficient of 0 could not skip under vmap.
    exploration: str = "none"
    intrinsic_reward_decay_steps: int = 0  # env steps; 0: a constant intrinsic_reward
    real_ratio_decay_steps: int = 0  # env steps (warm-up included); 0: a constant real_ratio
    target_tau_decay_steps: int = 0  # env steps (warm-up included); 0: a constant target_tau

    @classmethod
    def tiny(cls, **overrides) -> "Config":
        """Seconds-scale settings for tests."""
        base = dict(
            num_envs=2, num_iterations=3, warmup_iterations=1, steps_per_iteration=8,
            model_train_every=4, rollouts_per_step=4, rollout_schedule=(1, 2, 1, 2),
            policy_updates_per_step=2, policy_batch_size=16, policy_hidden_sizes=(16,), num_members=3,
            num_model_elites=2, model_hidden_sizes=(16,), model_epochs=2, model_batch_size=16,
            num_eval_episodes=2,
        )
        base.update(overrides)
        return cls(**base)

    @property
    def max_rollout_length(self) -> int:
        return max(self.rollout_schedule[2], self.rollout_schedule[3])

    def _validate(self) -> None:
        self._ints(1, "num_envs", "num_iterations", "steps_per_iteration", "model_train_every",
                   "rollouts_per_step", "model_retain_blocks", "policy_updates_per_step", "policy_batch_size",
                   "num_members", "num_model_elites", "model_epochs", "model_batch_size", "num_eval_episodes")
        self._ints(0, "warmup_iterations", "buffer_capacity", "model_patience", "max_holdout",
                   "intrinsic_reward_decay_steps", "real_ratio_decay_steps",
                   "target_tau_decay_steps")
        self._choice("exploration", EXPLORATIONS)
        te = self.target_entropy
        if te is not None and (isinstance(te, bool) or not isinstance(te, (int, float)) or not math.isfinite(te)):
            raise ValueError(f"mbpo.Config.target_entropy must be a finite number or None (-A), got {te!r}.")
        if not 1 <= self.warmup_iterations < self.num_iterations:
            raise ValueError(
                f"mbpo.Config.warmup_iterations={self.warmup_iterations} must be >= 1 (the "
                f"first model needs data) and < num_iterations={self.num_iterations}."
            )
        self._divides("model_train_every", "steps_per_iteration")
        sched = self.rollout_schedule
        if (len(sched) != 4 or not all(isinstance(v, int) for v in sched) or min(sched[2:]) < 1
                or sched[1] < sched[0]):
            raise ValueError(
                f"mbpo.Config.rollout_schedule must be (start_epoch, end_epoch, min_k, max_k) integers "
                f"with end_epoch >= start_epoch and k >= 1, got {sched!r}."
            )
        self._at_most("num_model_elites", "num_members")
        self._widths("model_hidden_sizes", "policy_hidden_sizes")
        self._choice("model_activation", models.ACTIVATIONS)
        self._choice("model_compute_dtype", models.COMPUTE_DTYPES)
        self._choice("policy_compute_dtype", models.COMPUTE_DTYPES)

    def validate_hparams(self, hparams) -> None:
        """Range checks, and a one-line refusal of a bonus the config would not add."""
        super().validate_hparams(hparams)
        _check_bonus(self, hparams)


Config.HPARAM_RANGES = {
    **MODEL_RANGES, "real_ratio": UNIT, "real_ratio_end": UNIT, "actor_learning_rate": POSITIVE,
    "critic_learning_rate": POSITIVE, "alpha_learning_rate": NON_NEGATIVE, "discount": UNIT, "target_tau": RATE,
    "target_tau_end": RATE, "init_alpha": POSITIVE,
    # A negative bonus (pessimism, as MOPO's penalty) is allowed.
    "intrinsic_reward": Range(), "intrinsic_reward_end": Range(),
}


def _check_bonus(cfg: Config, hp) -> None:
    """Concrete nonzero intrinsic-reward coefficients need exploration="disagreement"."""
    check_bonus_unused(cfg, hp, "disagreement")


class Metrics(NamedTuple):
    """Per-iteration metrics (each a scalar; stacked [iterations] by `run`)."""

    iteration: Array  # int32, 0-based, warm-up iterations included
    env_steps: Array  # int32, total so far
    episode_return: Array  # mean return of training episodes completed this iteration (NaN if none)
    episodes: Array  # int32 training episodes completed this iteration
    eval_return: Array  # mean return of the greedy policy's evaluation episodes (NaN while exploring)
    step_reward: Array  # mean reward per env step this iteration
    rollout_length: Array  # int32 k of the last block
    model_buffer_size: Array  # int32 valid model transitions held
    model_train_loss: Array  # the model's training loss at the last fit (NaN while exploring)
    model_holdout_mse: Array  # its held-out MSE at the last fit
    model_fit_epochs: Array  # float32 epochs the last fit trained (NaN while exploring or closed-form)
    critic_loss: Array  # mean over the iteration's SAC updates (NaN while exploring)
    actor_loss: Array
    alpha: Array  # temperature at the end of the iteration
    entropy: Array  # mean policy entropy estimate over the updates
    q_mean: Array
    # Mean ensemble disagreement of the last block's valid imagined transitions (the
    # bonus before its coefficient; NaN while exploring or with exploration="none").
    model_disagreement: Array


class State(NamedTuple):
    """Everything a MBPO run carries between iterations (one seed; the runner vmaps it).

    A checkpoint is this pytree; `env_steps` counts the env steps taken so far.
    """

    key: PRNGKey
    hparams: HParams
    env_state: Any  # gymnax state [B, ...]
    obs: Array  # [B, *obs_shape]
    episode_return: Array  # [B] running return of the current episodes
    buffer: buffers.BufferState  # real transitions
    model_buffer: ModelBuffer
    model: Any  # the model's state (models.ModelState for the ensemble)
    agent: sac_lib.SACState
    iteration: Array  # int32
    env_steps: Array  # int32
    warmup: Metrics  # [warmup_iterations] metrics of the random iterations


class Train(NamedTuple):
    """`init(key, hparams) -> State`; `step(state) -> (state, Metrics)`;
    `run(key, hparams) -> (state, Metrics[num_iterations])`. All pure and jittable."""

    config: Config
    init: Callable[[PRNGKey, HParams], State]
    step: Callable[[State], Tuple[State, Metrics]]
    run: Callable[[PRNGKey, HParams], Tuple[State, Metrics]]
    model: models.Model
    agent: sac_lib.SAC
    spec: envs.EnvSpec
    # `policy(state, n) -> (act, policy_state)`: the greedy controller of `state` for n
    # envs, in `evaluate`'s shape (the evaluation's own; `jaxmbrl render` replays it).
    policy: Callable[[Any, int], Tuple[Callable, Any]] = None


def supports(spec: envs.EnvSpec) -> Optional[str]:
    """SAC needs continuous actions, and the evaluation an episode length."""
    if spec.discrete or spec.max_steps < 1:
        return None
    return ""


def default_model(config: Config, spec: envs.EnvSpec, termination_fn, reward_fn=None) -> models.Model:
    """The Gaussian ensemble of `config`, each row a random elite; it learns the reward
    unless `config.learn_reward` is False (then `reward_fn` is the known one)."""
    ens = models.make_ensemble(spec.obs_shape, spec.action_dim, config.num_members, config.num_model_elites,
                               config.model_hidden_sizes, learn_reward=config.learn_reward,
                               activation=config.model_activation, compute_dtype=config.model_compute_dtype)
    return models.ensemble_model(
        ens, propagation="ts1", reward_fn=None if config.learn_reward else reward_fn,
        termination_fn=termination_fn, epochs=config.model_epochs,
        batch_size=config.model_batch_size, patience=config.model_patience, max_holdout=config.max_holdout)


def make_train(config: Config, *, env=None, model: Optional[models.Model] = None, reward_fn=None,
               termination_fn=None) -> Train:
    """Builds MBPO's pure `init/step/run` for `config`.

    Args:
      env: an environment that is not registered: a gymnax env object or `(env, params)`.
      model: a `models.Model` (init / fit / step, predicting the reward) for the
        rollouts instead of the ensemble.
      reward_fn: the reward of the default ensemble's rollouts when
        `config.learn_reward` is False (default: the env's known one, `envs.reward_fn`).
      termination_fn: overrides the known termination of the env (default: the env's
        own where jaxmbrl knows it, else never terminate).
    Raises:
      ValueError for an invalid config, a discrete-action env, or `learn_reward=False`
      without a known reward; `envs.UnknownEnvError` for an unknown env id.
    """
    cfg = config
    cfg.validate()
    env, env_params, spec = resolve_env(cfg, env)
    if spec.discrete:
        raise ValueError(
            f"MBPO's SAC needs continuous actions, but {spec.env_id} is discrete ({spec.num_actions} "
            f"actions); use jaxmbrl.algorithms.dyna (DQN) or pets for discrete envs, or a Box env "
            f"such as Pendulum-v1 or MountainCarContinuous-v0."
        )
    if spec.max_steps < 1:
        raise ValueError(f"{spec.env_id} has no episode length; MBPO's evaluation needs one.")
    if model is not None and (reward_fn is not None or termination_fn is not None):
        raise ValueError("mbpo: reward_fn/termination_fn configure the default ensemble; a model passed as "
                         "model= predicts its own reward and termination (build it with them).")
    if model is None:
        if not cfg.learn_reward and reward_fn is None:
            try:
                reward_fn = envs.reward_fn(spec.env_id, env_params)
            except ValueError as err:
                raise ValueError(f"{err} Set learn_reward=True (MBPO's default) to learn it instead.") from None
        if cfg.learn_reward and reward_fn is not None:
            raise ValueError("mbpo: reward_fn is the known reward of learn_reward=False; set "
                             "learn_reward=False to use it, or drop reward_fn to learn the reward.")
        model = default_model(cfg, spec, termination_or_never(spec.env_id, termination_fn), reward_fn)
    if cfg.exploration == "disagreement" and getattr(model, "member_means", None) is None:
        raise ValueError("mbpo: exploration='disagreement' needs a model with member_means (the ensemble "
                         "has it; see models.Model); set exploration='none' for this model")
    bonus_coefficient = lambda hp, count: linear_decay(  # noqa: E731
        hp.intrinsic_reward, hp.intrinsic_reward_end, cfg.intrinsic_reward_decay_steps)(count)
    real_ratio_at = lambda hp, count: linear_decay(  # noqa: E731
        hp.real_ratio, hp.real_ratio_end, cfg.real_ratio_decay_steps)(count)
    target_tau_at = lambda hp, count: linear_decay(  # noqa: E731
        hp.target_tau, hp.target_tau_end, cfg.target_tau_decay_steps)(count)
    agent = sac_lib.make_sac(spec.obs_shape, spec.action_dim, spec.low, spec.high, cfg.policy_hidden_sizes,
                             target_entropy=cfg.target_entropy, compute_dtype=cfg.policy_compute_dtype)
    blocks = cfg.steps_per_iteration // cfg.model_train_every
    num_rollouts = cfg.rollouts_per_step * cfg.model_train_every * cfg.num_envs
    max_k = cfg.max_rollout_length
    capacity = cfg.buffer_capacity or cfg.num_iterations * cfg.steps_per_iteration * cfg.num_envs
    env_steps_per_iteration = cfg.steps_per_iteration * cfg.num_envs
    nan = jnp.full((), jnp.nan, jnp.float32)

    def model_hparams(hp: HParams) -> models.ModelHParams:
        return models.ModelHParams(hp.model_learning_rate, hp.model_weight_decay, hp.holdout_ratio)

    def batch_act(key, agent_state, obs, deterministic):
        keys = jax.random.split(key, obs.shape[0])
        return jax.vmap(agent.act, in_axes=(0, None, 0, None))(keys, agent_state, obs, deterministic)

    info_example = sac_lib.UpdateInfo(*(jnp.zeros((), jnp.float32) for _ in sac_lib.UpdateInfo._fields))

    def env_steps_scan(state: State, num_steps: int, act_fn: Callable, learn_fn: Callable):
        """`num_steps` vectorised env steps under `act_fn(key, state) -> actions [B, A]`;
        `learn_fn(key, state) -> (state, UpdateInfo)` runs after each. A lax.scan."""

        def body(carry, key):
            state, done_sum, done_count, reward_sum, info_sum = carry
            k_act, k_env, k_learn = jax.random.split(key, 3)
            with jax.named_scope("act"):
                action = act_fn(k_act, state)
            with jax.named_scope("env"):
                transition, obs, env_state = envs.batch_step(env, env_params, k_env, state.env_state, state.obs,
                                                             action)
            ep_ret, finished = track_episodes(state.episode_return, transition)
            state = state._replace(
                env_state=env_state, obs=obs, episode_return=ep_ret,
                buffer=buffers.add(state.buffer, transition), env_steps=state.env_steps + cfg.num_envs,
            )
            with jax.named_scope("policy_update"):
                state, info = learn_fn(k_learn, state)
            carry = (state, done_sum + finished.return_sum, done_count + finished.count,
                     reward_sum + transition.reward.sum(), jax.tree.map(jnp.add, info_sum, info))
            return carry, None

        key, k_scan = jax.random.split(state.key)
        zero = jnp.zeros((), jnp.float32)
        carry = (state._replace(key=key), zero, jnp.zeros((), jnp.int32), zero, info_example)
        carry, _ = jax.lax.scan(body, carry, jax.random.split(k_scan, num_steps))
        return carry

    def random_action(key, state):
        keys = jax.random.split(key, cfg.num_envs)
        return jax.vmap(envs.random_action, in_axes=(0, None))(keys, spec)

    def sac_updates(key, state: State):
        hp = state.hparams
        real_ratio = real_ratio_at(hp, state.env_steps)
        sac_hp = hp.sac()._replace(target_tau=target_tau_at(hp, state.env_steps))

        def one(agent_state, k):
            k_real, k_model, k_mix, k_upd = jax.random.split(k, 4)
            real = buffers.sample(k_real, state.buffer, cfg.policy_batch_size)
            imagined = model_buffer_sample(k_model, state.model_buffer, cfg.policy_batch_size)
            use_real = jax.random.uniform(k_mix, (cfg.policy_batch_size,)) < real_ratio
            use_real = use_real | (state.model_buffer.counts.sum() == 0)
            pick = lambda r, m: jnp.where(use_real.reshape((-1,) + (1,) * (r.ndim - 1)), r, m.astype(r.dtype))
            batch = jax.tree.map(pick, real, imagined)
            agent_state, info = agent.update(agent_state, batch, sac_hp, k_upd)
            return agent_state, info

        agent_state, infos = jax.lax.scan(one, state.agent, jax.random.split(key, cfg.policy_updates_per_step))
        return state._replace(agent=agent_state), jax.tree.map(jnp.mean, infos)

    def policy_action(key, state):
        return batch_act(key, state.agent, state.obs, False)

    def no_learning(key, state):
        del key
        return state, info_example

    def refit_and_imagine(state: State):
        hp = state.hparams
        key, k_fit, k_start, k_roll = jax.random.split(state.key, 4)
        with jax.named_scope("model_fit"):
            model_state, fit_info = model.fit(k_fit, state.model, state.buffer, model_hparams(hp))
        epoch = state.env_steps // env_steps_per_iteration
        k = rollout_length(epoch, cfg.rollout_schedule)
        starts = buffers.sample(k_start, state.buffer, num_rollouts).obs
        policy = lambda key, obs: batch_act(key, state.agent, obs, False)
        model_step = lambda kk, o, a: model.step(kk, model_state, o, a)  # noqa: E731
        with jax.named_scope("model_rollout"):
            if cfg.exploration == "disagreement":
                transitions, valid, bonus = bonus_rollout(
                    k_roll, model_step, lambda o, a: model.member_means(model_state, o, a),
                    bonus_coefficient(hp, state.env_steps), policy, starts, k, max_k)
                bonus = jnp.where(valid, bonus, 0.0).sum() / jnp.maximum(valid.sum(), 1)
            else:
                transitions, valid = branched_rollout(k_roll, model_step, policy, starts, k, max_k)
                bonus = nan
        model_buffer = model_buffer_add(state.model_buffer, transitions, valid)
        stats = (k, jnp.asarray(fit_info.train_loss, jnp.float32), jnp.asarray(fit_info.holdout_mse, jnp.float32),
                 jnp.asarray(fit_info.epochs, jnp.float32), bonus)
        return state._replace(key=key, model=model_state, model_buffer=model_buffer), stats

    def greedy_policy(state: State, n: int):
        del n  # SAC's greedy action keeps no state between steps
        return batch_policy(lambda k, obs: agent.act(k, state.agent, obs, True)), None

    def greedy_return(key, state: State):
        return evaluate(env, env_params, key, *greedy_policy(state, cfg.num_eval_episodes), cfg.num_eval_episodes,
                        spec.max_steps)

    def metrics_of(state, env_stats, model_stats, eval_return, info):
        done_sum, done_count, reward_sum = env_stats
        k, loss, mse, fit_epochs, bonus = model_stats
        return Metrics(
            iteration=state.iteration,
            env_steps=state.env_steps,
            episode_return=jnp.where(done_count > 0, done_sum / jnp.maximum(done_count, 1), jnp.nan),
            episodes=done_count,
            eval_return=eval_return,
            step_reward=reward_sum / env_steps_per_iteration,
            rollout_length=jnp.asarray(k, jnp.int32),
            model_buffer_size=state.model_buffer.counts.sum(),
            model_train_loss=loss,
            model_holdout_mse=mse,
            model_fit_epochs=fit_epochs,
            critic_loss=info.critic_loss,
            actor_loss=info.actor_loss,
            alpha=jnp.exp(state.agent.log_alpha),
            entropy=info.entropy,
            q_mean=info.q_mean,
            model_disagreement=bonus,
        )

    def explore_iteration(state: State) -> Tuple[State, Metrics]:
        state, done_sum, done_count, reward_sum, _ = env_steps_scan(state, cfg.steps_per_iteration, random_action, no_learning)
        nan_info = jax.tree.map(lambda a: a + jnp.nan, info_example)
        metrics = metrics_of(state, (done_sum, done_count, reward_sum), (jnp.zeros((), jnp.int32), nan, nan, nan, nan),
                             nan, nan_info)
        return state._replace(iteration=state.iteration + 1), metrics

    def block(carry, _):
        state, done_sum, done_count, reward_sum, info_sum = carry
        state, model_stats = refit_and_imagine(state)
        state, d_sum, d_count, r_sum, info = env_steps_scan(state, cfg.model_train_every, policy_action, sac_updates)
        carry = (state, done_sum + d_sum, done_count + d_count, reward_sum + r_sum,
                 jax.tree.map(jnp.add, info_sum, info))
        return carry, model_stats

    def step(state: State) -> Tuple[State, Metrics]:
        zero = jnp.zeros((), jnp.float32)
        carry = (state, zero, jnp.zeros((), jnp.int32), zero, info_example)
        (state, done_sum, done_count, reward_sum, info_sum), model_stats = jax.lax.scan(
            block, carry, None, length=blocks)
        info = jax.tree.map(lambda a: a / cfg.steps_per_iteration, info_sum)
        key, k_eval = jax.random.split(state.key)
        state = state._replace(key=key)
        with jax.named_scope("eval"):
            eval_return = greedy_return(k_eval, state)
        last = jax.tree.map(lambda a: a[-1], model_stats)
        metrics = metrics_of(state, (done_sum, done_count, reward_sum), last, eval_return, info)
        return state._replace(iteration=state.iteration + 1), metrics

    def init(key: PRNGKey, hp: HParams) -> State:
        _check_bonus(cfg, hp)
        hp = as_float32(hp)
        k_env, k_model, k_agent, k_run = jax.random.split(key, 4)
        obs, env_state = envs.batch_reset(env, env_params, k_env, cfg.num_envs)
        example = envs.example_transition(spec, obs[0])
        state = State(
            key=k_run, hparams=hp, env_state=env_state, obs=obs,
            episode_return=jnp.zeros((cfg.num_envs,), jnp.float32),
            buffer=buffers.init(capacity, example),
            model_buffer=model_buffer_init(cfg.model_retain_blocks, max_k * num_rollouts, example),
            model=model.init(k_model, example, model_hparams(hp)), agent=agent.init(k_agent, hp.sac()),
            iteration=jnp.zeros((), jnp.int32), env_steps=jnp.zeros((), jnp.int32), warmup=None,
        )
        state, warmup = jax.lax.scan(lambda s, _: explore_iteration(s), state, None,
                                     length=cfg.warmup_iterations)
        return state._replace(warmup=warmup)

    def run(key: PRNGKey, hp: HParams) -> Tuple[State, Metrics]:
        return run_after_warmup(init, step, cfg.num_iterations - cfg.warmup_iterations, key, hp)

    return Train(cfg, init, step, run, model, agent, spec, greedy_policy)
