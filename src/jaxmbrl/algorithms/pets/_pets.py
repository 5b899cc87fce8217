"""PETS: probabilistic ensembles with trajectory sampling (Chua et al. 2018).

One iteration = `steps_per_iteration` env steps (by default one episode) of MPC in
`num_envs` vectorised envs with the current ensemble, then a refit on all data so far.
The first `random_iterations` iterations act uniformly at random; `init` runs them and
fits the first model, so every `step` is the same compiled MPC iteration.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl import buffers, envs, models, planning
from jaxmbrl.algorithms._episodes import run_after_warmup, track_episodes
from jaxmbrl.types import Array, PRNGKey, Transition

CONTINUOUS_PLANNERS = planning.CONTINUOUS_PLANNERS
DISCRETE_PLANNERS = planning.DISCRETE_PLANNERS
PLANNERS = planning.PLANNERS


@dataclasses.dataclass(frozen=True)
class Config:
    """Static PETS configuration: shapes, counts and names (changing one recompiles).

    The defaults are the Pendulum-v1 run of `scripts/pets_pendulum.py`.
    """

    env_id: str = "Pendulum-v1"
    num_envs: int = 1
    num_iterations: int = 10  # in total, random ones included
    random_iterations: int = 1
    steps_per_iteration: int = 0  # 0: the env's episode length
    # Planner.
    planner: str = "auto"  # "cem" for continuous, "discrete_cem" for discrete envs
    horizon: int = 15
    num_samples: int = 200
    num_elites: int = 20
    planner_iterations: int = 5
    num_particles: int = 10
    propagation: str = "tsinf"
    # Dynamics model.
    num_members: int = 5
    num_model_elites: int = 5
    # Enough for classic control; PETS used 4 x 200 for its MuJoCo tasks.
    hidden_sizes: Tuple[int, ...] = (64, 64, 64)
    learn_reward: bool = False
    model_epochs: int = 25
    model_batch_size: int = 32
    model_patience: int = 5
    max_holdout: int = 2000

    @classmethod
    def tiny(cls, **overrides) -> "Config":
        """Seconds-scale settings for tests."""
        base = dict(
            num_iterations=3, random_iterations=1, steps_per_iteration=20, horizon=5,
            num_samples=16, num_elites=4, planner_iterations=2, num_particles=2,
            num_members=2, num_model_elites=2, hidden_sizes=(16,), model_epochs=2,
        )
        base.update(overrides)
        return cls(**base)

    def hparams(self) -> "HParams":
        return HParams()

    def validate(self) -> None:
        positive = (
            "num_envs", "num_iterations", "horizon", "num_samples", "num_elites",
            "planner_iterations", "num_particles", "num_members", "num_model_elites",
            "model_epochs", "model_batch_size",
        )
        for name in positive:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"pets.Config.{name} must be an integer >= 1, got {value!r}.")
        for name in ("random_iterations", "steps_per_iteration", "model_patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"pets.Config.{name} must be an integer >= 0, got {value!r}.")
        if not 1 <= self.random_iterations < self.num_iterations:
            raise ValueError(
                f"pets.Config.random_iterations={self.random_iterations} must be >= 1 (the first "
                f"model needs data) and < num_iterations={self.num_iterations}."
            )
        if self.num_elites > self.num_samples:
            raise ValueError(
                f"pets.Config.num_elites={self.num_elites} exceeds num_samples={self.num_samples}."
            )
        if self.num_model_elites > self.num_members:
            raise ValueError(
                f"pets.Config.num_model_elites={self.num_model_elites} exceeds num_members={self.num_members}."
            )
        if self.planner not in PLANNERS:
            raise ValueError(f"pets.Config.planner={self.planner!r} is unknown; choose one of {PLANNERS}.")
        if self.propagation not in models.PROPAGATIONS:
            raise ValueError(
                f"pets.Config.propagation={self.propagation!r} is unknown; choose one of {models.PROPAGATIONS}."
            )
        if not self.hidden_sizes or any(int(h) < 1 for h in self.hidden_sizes):
            raise ValueError(f"pets.Config.hidden_sizes must be positive widths, got {self.hidden_sizes!r}.")


class HParams(NamedTuple):
    """Float hyperparameters, traced: `jax.vmap(train.run)(keys, hparams)` sweeps them."""

    model_learning_rate: Any = 1e-3
    model_weight_decay: Any = 5e-5
    holdout_ratio: Any = 0.2
    planner_alpha: Any = 0.1  # CEM/iCEM mean/std momentum; MPPI smoothing
    mppi_temperature: Any = 1.0
    discount: Any = 1.0


class Metrics(NamedTuple):
    """Per-iteration metrics (each a scalar; stacked [iterations] by `run`)."""

    iteration: Array  # int32, 0-based, random iterations included
    env_steps: Array  # int32, total so far
    episode_return: Array  # mean return of episodes completed this iteration (NaN if none)
    episodes: Array  # int32 episodes completed this iteration
    best_episode_return: Array  # best return of those episodes (-inf if none)
    step_reward: Array  # mean reward per env step this iteration
    planned_return: Array  # model's predicted return of the executed plans (mean)
    model_train_loss: Array  # last epoch's mean minibatch loss
    model_holdout_mse: Array  # held-out MSE (normalised targets), mean over elites


class State(NamedTuple):
    key: PRNGKey
    hparams: HParams
    env_state: Any  # gymnax state [B, ...]
    obs: Array  # [B, *obs_shape]
    episode_return: Array  # [B] running return of the current episodes
    buffer: buffers.BufferState
    model: models.ModelState
    planner: planning.PlannerState  # [B, ...]
    iteration: Array  # int32
    env_steps: Array  # int32
    warmup: Metrics  # [random_iterations] metrics of the random iterations


class Train(NamedTuple):
    """`init(key, hparams) -> State`; `step(state) -> (state, Metrics)`;
    `run(key, hparams) -> (state, Metrics[num_iterations])`. All pure and jittable."""

    config: Config
    init: Callable[[PRNGKey, HParams], State]
    step: Callable[[State], Tuple[State, Metrics]]
    run: Callable[[PRNGKey, HParams], Tuple[State, Metrics]]
    ensemble: models.Ensemble  # the dynamics model whose state is `State.model`


def _resolve_planner(cfg: Config, spec: envs.EnvSpec) -> str:
    return planning.resolve_planner(cfg.planner, spec, cfg.env_id)


def _build_planner(name: str, model_fn, spec, cfg: Config, hp: HParams) -> planning.Planner:
    return planning.make_planner(
        name, model_fn, spec, horizon=cfg.horizon, num_samples=cfg.num_samples, num_elites=cfg.num_elites,
        num_iters=cfg.planner_iterations, num_particles=cfg.num_particles, discount=hp.discount,
        alpha=hp.planner_alpha, mppi_temperature=hp.mppi_temperature)


def _flatten_time(tree):
    return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), tree)


def make_train(config: Config, *, reward_fn=None, termination_fn=None) -> Train:
    """Builds PETS' pure `init/step/run` for `config`.

    Args:
      reward_fn, termination_fn: override the known functions of `config.env_id`.
        Without a known reward, set `learn_reward=True`.
    Raises:
      ValueError for an invalid config, a planner that does not fit the action space,
      or a missing reward function; `envs.UnknownEnvError` for an unknown env id.
    """
    cfg = config
    cfg.validate()
    env, env_params, spec = envs.make(cfg.env_id)
    planner_name = _resolve_planner(cfg, spec)
    steps = cfg.steps_per_iteration or spec.max_steps
    if steps < 1:
        raise ValueError(f"{cfg.env_id} has no episode length; set steps_per_iteration.")
    if not cfg.learn_reward and reward_fn is None:
        try:
            reward_fn = envs.reward_fn(cfg.env_id)
        except ValueError as err:
            raise ValueError(f"{err} Set learn_reward=True to learn the reward instead.") from None
    if termination_fn is None:
        try:
            termination_fn = envs.termination_fn(cfg.env_id)
        except ValueError:
            termination_fn = None  # never terminates in imagination
    ens = models.make_ensemble(
        spec.obs_shape, spec.action_dim, cfg.num_members, cfg.num_model_elites, cfg.hidden_sizes,
        discrete_actions=spec.discrete, learn_reward=cfg.learn_reward,
    )
    model_fn = models.as_model_fn(ens, cfg.propagation, reward_fn=None if cfg.learn_reward else reward_fn,
                                  termination_fn=termination_fn)
    # Build once with default floats so that bad settings fail here, not inside a trace.
    _build_planner(planner_name, model_fn, spec, cfg, HParams())
    capacity = cfg.num_iterations * steps * cfg.num_envs

    def planner_for(hp: HParams) -> planning.Planner:
        return _build_planner(planner_name, model_fn, spec, cfg, hp)

    def fit_model(key, model, buffer, hp):
        return models.fit(ens, model, key, buffer, epochs=cfg.model_epochs, batch_size=cfg.model_batch_size,
                          holdout_ratio=hp.holdout_ratio, max_holdout=cfg.max_holdout,
                          patience=cfg.model_patience)

    def interact(state: State, act) -> Tuple[State, Any]:
        """`steps` env steps in B envs under `act(key, planner_state, obs)`: a lax.scan."""

        def body(carry, key):
            env_state, obs, pstate, ep_ret, done_sum, done_count, done_best = carry
            k_act, k_env = jax.random.split(key)
            action, pstate, planned = act(k_act, pstate, obs)
            transition, obs, env_state = envs.batch_step(env, env_params, k_env, env_state, obs, action)
            ep_ret, finished = track_episodes(ep_ret, transition)
            done_sum = done_sum + finished.return_sum
            done_count = done_count + finished.count
            done_best = jnp.maximum(done_best, finished.best)
            return (env_state, obs, pstate, ep_ret, done_sum, done_count, done_best), (transition, planned)

        key, k_scan = jax.random.split(state.key)
        carry = (state.env_state, state.obs, state.planner, state.episode_return,
                 jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32), jnp.full((), -jnp.inf, jnp.float32))
        carry, (transitions, planned) = jax.lax.scan(body, carry, jax.random.split(k_scan, steps))
        env_state, obs, pstate, ep_ret, done_sum, done_count, done_best = carry
        buffer = buffers.add(state.buffer, _flatten_time(transitions))
        state = state._replace(key=key, env_state=env_state, obs=obs, planner=pstate, episode_return=ep_ret,
                               buffer=buffer, env_steps=state.env_steps + steps * cfg.num_envs)
        returns = jnp.where(done_count > 0, done_sum / jnp.maximum(done_count, 1), jnp.nan)
        return state, (returns, done_count, done_best, planned.mean(), transitions.reward.mean())

    def refit(state: State, rollout_stats) -> Tuple[State, Metrics]:
        key, k_fit = jax.random.split(state.key)
        model, info = fit_model(k_fit, state.model, state.buffer, state.hparams)
        returns, count, best, planned, step_reward = rollout_stats
        metrics = Metrics(
            iteration=state.iteration,
            env_steps=state.env_steps,
            episode_return=returns,
            episodes=count,
            best_episode_return=best,
            step_reward=step_reward,
            planned_return=planned,
            model_train_loss=info.train_loss[jnp.maximum(info.epochs_trained.max() - 1, 0)],
            model_holdout_mse=info.best_holdout_mse[model.elites].mean(),
        )
        return state._replace(key=key, model=model, iteration=state.iteration + 1), metrics

    def random_act(key, pstate, obs):
        keys = jax.random.split(key, cfg.num_envs)
        action = jax.vmap(envs.random_action, in_axes=(0, None))(keys, spec)
        return action, pstate, jnp.full((), jnp.nan, jnp.float32)

    def mpc_act_for(hp):
        planner = planner_for(hp)

        def act(key, pstate, obs, model):
            keys = jax.random.split(key, cfg.num_envs)
            action, pstate, info = jax.vmap(planner.plan, in_axes=(0, 0, None, 0))(keys, pstate, model, obs)
            return action, pstate, info.expected_return.mean()

        return act

    def iteration(state: State, act) -> Tuple[State, Metrics]:
        state, stats = interact(state, act)
        return refit(state, stats)

    def init(key: PRNGKey, hp: HParams) -> State:
        hp = HParams(*(jnp.asarray(h, jnp.float32) for h in hp))
        k_env, k_model, k_run = jax.random.split(key, 3)
        obs, env_state = envs.batch_reset(env, env_params, k_env, cfg.num_envs)
        example = Transition(
            obs=obs[0], action=jnp.zeros(spec.action_shape, spec.action_dtype),
            reward=jnp.zeros((), jnp.float32), next_obs=obs[0],
            terminated=jnp.zeros((), jnp.bool_), truncated=jnp.zeros((), jnp.bool_),
        )
        ens_opt = models.init_model(ens, k_model, example, learning_rate=hp.model_learning_rate)
        ens_opt.opt_state.hyperparams["weight_decay"] = hp.model_weight_decay
        pstate = jax.vmap(lambda _: planner_for(hp).init())(jnp.arange(cfg.num_envs))
        state = State(
            key=k_run, hparams=hp, env_state=env_state, obs=obs,
            episode_return=jnp.zeros((cfg.num_envs,), jnp.float32),
            buffer=buffers.init(capacity, example), model=ens_opt, planner=pstate,
            iteration=jnp.zeros((), jnp.int32), env_steps=jnp.zeros((), jnp.int32),
            warmup=None,
        )
        state, warmup = jax.lax.scan(
            lambda s, _: iteration(s, random_act), state, None, length=cfg.random_iterations
        )
        return state._replace(warmup=warmup)

    def step(state: State) -> Tuple[State, Metrics]:
        act = mpc_act_for(state.hparams)
        return iteration(state, lambda k, p, o: act(k, p, o, state.model))

    def run(key: PRNGKey, hp: HParams) -> Tuple[State, Metrics]:
        return run_after_warmup(init, step, cfg.num_iterations - cfg.random_iterations, key, hp)

    return Train(cfg, init, step, run, ens)
