"""PETS: probabilistic ensembles with trajectory sampling (Chua et al. 2018).

One iteration = `steps_per_iteration` env steps (by default one episode) of MPC in
`num_envs` vectorised envs with the current model, then a refit on all data so far.
The first `warmup_iterations` iterations act uniformly at random; `init` runs them and
fits the first model, so every `step` is the same compiled MPC iteration.

The model is an argument: the Gaussian ensemble by default, or any `models.Model`
passed as `make_train(config, model=...)`. The planner is any registered planner; its
float settings are the `planner_*` fields of `HParams`, so they sweep under vmap.
`HParams.optimism` ranks candidates by mean + optimism * std over ensemble members of
their return (`planning.optimistic`; the default ensemble under TSinf only); 0 is the
plain particle mean, bit for bit.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl import buffers, envs, models, planning
from jaxmbrl.algorithms._contract import (
    MODEL_RANGES,
    UNIT,
    ConfigBase,
    as_float32,
    planner_hparams,
    planner_ranges,
    reset_where,
    resolve_env,
)
from jaxmbrl.algorithms._episodes import run_after_warmup, track_episodes
from jaxmbrl.types import Array, PRNGKey, Range


class HParams(NamedTuple):
    """Float hyperparameters, traced: `jax.vmap(train.run)(keys, hparams)` sweeps them.

    The `planner_*` fields are the floats of every registered planner; the one chosen
    by `Config.planner` reads those it uses (see `jaxmbrl.planning.planner_float_fields`).
    """

    model_learning_rate: Any = 1e-3
    model_weight_decay: Any = 5e-5
    holdout_ratio: Any = 0.2
    discount: Any = 1.0
    planner_alpha: Any = 0.1  # CEM/iCEM mean/std momentum; MPPI smoothing
    planner_beta: Any = 2.0  # iCEM colored-noise exponent
    planner_gamma: Any = 1.25  # iCEM population decay
    planner_keep_fraction: Any = 0.3  # iCEM elites carried over
    planner_temperature: Any = 1.0  # MPPI temperature (units of return)
    planner_noise_scale: Any = 0.25  # MPPI noise std as a fraction of the action range
    planner_uniform_mix: Any = 0.3  # discrete CEM: weight of the uniform distribution mixed in
    planner_gumbel_scale: Any = 1.0  # MCTS (Gumbel MuZero): root noise scale
    planner_pb_c_init: Any = 1.25  # MCTS (pUCT): exploration constant
    planner_dirichlet_fraction: Any = 0.0  # MCTS (pUCT): root prior noise
    planner_min_std: Any = 0.025  # mppi_elites: std floor (fraction of the action range)
    planner_max_std: Any = 1.0  # mppi_elites: the std each call starts from (fraction of the range)
    # Candidates are ranked by mean + optimism * std over ensemble members of their
    # return (TSinf: each particle keeps one member); 0 is the plain mean, < 0 pessimism.
    optimism: Any = 0.0


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    """Static PETS configuration: shapes, counts and names (changing one recompiles).

    The defaults are the Pendulum-v1 run of `scripts/pets_pendulum.py`.
    """

    NAME = "pets"
    HPARAMS = HParams

    env_id: str = "Pendulum-v1"
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    num_envs: int = 1
    num_iterations: int = 10  # in total, warm-up ones included
    warmup_iterations: int = 1
    steps_per_iteration: int = 0  # 0: the env's episode length
    buffer_capacity: int = 0  # 0: every step of the run
    # Planner.
    planner: str = "auto"  # "cem" for continuous, "discrete_cem" for discrete envs
    planner_horizon: int = 15
    planner_samples: int = 200
    planner_elites: int = 20
    planner_iterations: int = 5
    planner_particles: int = 10
    propagation: str = "tsinf"
    # Dynamics model.
    num_members: int = 5
    num_model_elites: int = 5
    # Enough for classic control; PETS used 4 x 200 for its MuJoCo tasks.
    model_hidden_sizes: Tuple[int, ...] = (64, 64, 64)
    model_activation: str = "silu"  # models.ACTIVATIONS
    model_compute_dtype: str = "float32"  # or "bfloat16" products (models.make_ensemble)
    learn_reward: bool = False
    model_epochs: int = 25
    model_batch_size: int = 32
    model_patience: int = 5
    max_holdout: int = 2000

    @classmethod
    def tiny(cls, **overrides) -> "Config":
        """Seconds-scale settings for tests."""
        base = dict(
            num_iterations=3, warmup_iterations=1, steps_per_iteration=20, planner_horizon=5,
            planner_samples=16, planner_elites=4, planner_iterations=2, planner_particles=2,
            num_members=2, num_model_elites=2, model_hidden_sizes=(16,), model_epochs=2,
        )
        base.update(overrides)
        return cls(**base)

    def _validate(self) -> None:
        self._ints(1, "num_envs", "num_iterations", "planner_horizon", "planner_samples", "planner_elites",
                   "planner_iterations", "planner_particles", "num_members", "num_model_elites",
                   "model_epochs", "model_batch_size", "max_holdout")
        self._ints(0, "warmup_iterations", "steps_per_iteration", "buffer_capacity", "model_patience")
        if not 1 <= self.warmup_iterations < self.num_iterations:
            raise ValueError(
                f"pets.Config.warmup_iterations={self.warmup_iterations} must be >= 1 (the first "
                f"model needs data) and < num_iterations={self.num_iterations}."
            )
        self._at_most("planner_elites", "planner_samples")
        self._at_most("num_model_elites", "num_members")
        self._choice("planner", planning.PLANNERS)
        self._choice("propagation", models.PROPAGATIONS)
        self._widths("model_hidden_sizes")
        self._choice("model_activation", models.ACTIVATIONS)
        self._choice("model_compute_dtype", models.COMPUTE_DTYPES)

    def validate_hparams(self, hparams) -> None:
        """Range checks, and a one-line refusal of optimism != 0 where it cannot apply."""
        super().validate_hparams(hparams)
        _check_optimism(self, hparams)


Config.HPARAM_RANGES = {**MODEL_RANGES, "discount": UNIT, **planner_ranges(), "optimism": Range()}

# Planners that score candidates through `planning.evaluate_candidates` (and so honour
# `planning.optimistic`) are all but the tree searches, which back up single rollouts.
_TREE_PLANNERS = ("mcts", "mcts_puct")


def _optimism_refusal(cfg: Config, own_model: bool = True, planner: str = "") -> Optional[str]:
    """Why `cfg` cannot plan with optimism != 0 (one line), or None if it can.

    `planner` is the resolved planner name (default `cfg.planner`).
    """
    if not own_model:
        return ("pets: optimism != 0 needs the default ensemble (a model passed as model= does not say "
                "which member steps each particle); set optimism=0")
    if cfg.propagation != "tsinf":
        return (f"pets: optimism != 0 needs propagation='tsinf' (each particle keeps one member, so every "
                f"member has a return); got propagation={cfg.propagation!r}")
    if cfg.planner_particles % cfg.num_model_elites:
        return (f"pets: optimism != 0 needs planner_particles={cfg.planner_particles} to be a multiple of "
                f"num_model_elites={cfg.num_model_elites}; e.g. set planner_particles="
                f"{cfg.num_model_elites * max(1, cfg.planner_particles // cfg.num_model_elites)}")
    planner = planner or cfg.planner
    if planner in _TREE_PLANNERS:
        return f"pets: optimism != 0 needs a sampling planner (cem, icem, mppi, ...), not {planner!r}"
    return None


def _check_optimism(cfg: Config, hp, own_model: bool = True) -> None:
    """Raises the refusal for concrete nonzero `hp.optimism` (traced values pass)."""
    value = hp.optimism
    if isinstance(value, jax.core.Tracer):
        return
    import numpy as np

    if np.any(np.asarray(value, np.float64) != 0):
        reason = _optimism_refusal(cfg, own_model)
        if reason is not None:
            raise ValueError(reason)


class Metrics(NamedTuple):
    """Per-iteration metrics (each a scalar; stacked [iterations] by `run`)."""

    iteration: Array  # int32, 0-based, warm-up iterations included
    env_steps: Array  # int32, total so far
    episode_return: Array  # mean return of episodes completed this iteration (NaN if none)
    episodes: Array  # int32 episodes completed this iteration
    best_episode_return: Array  # best return of those episodes (-inf if none)
    step_reward: Array  # mean reward per env step this iteration
    planned_return: Array  # model's predicted return of the executed plans (mean)
    model_train_loss: Array  # the model's training loss at the last fit
    model_holdout_mse: Array  # its held-out MSE at the last fit (NaN if it keeps none)
    model_fit_epochs: Array  # float32 epochs the last fit trained (NaN for a closed-form fit)


class State(NamedTuple):
    """Everything a PETS run carries between iterations (one seed; the runner vmaps it).

    A checkpoint is this pytree; `env_steps` counts the env steps taken so far.
    """

    key: PRNGKey
    hparams: HParams
    env_state: Any  # gymnax state [B, ...]
    obs: Array  # [B, *obs_shape]
    episode_return: Array  # [B] running return of the current episodes
    buffer: buffers.BufferState
    model: Any  # the model's state (models.ModelState for the ensemble)
    planner: Any  # the planner's state [B, ...]
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
    model: models.Model  # the dynamics model whose state is `State.model`
    spec: envs.EnvSpec
    # `policy(state, n) -> (act, policy_state)`: the MPC controller of `state` for n envs,
    # in `evaluate`'s shape (PETS evaluates while it trains; `jaxmbrl render` replays it).
    policy: Callable[[Any, int], Tuple[Callable, Any]] = None


def supports(spec: envs.EnvSpec) -> Optional[str]:
    """Every action space fits (continuous or discrete planners); without a known reward
    the model must learn it."""
    return "" if envs.known_reward(spec.env_id) is not None else "learn_reward=True"


def default_model(config: Config, spec: envs.EnvSpec, reward_fn=None, termination_fn=None) -> models.Model:
    """The Gaussian ensemble of `config`, TS-propagated, with known reward/termination."""
    ens = models.make_ensemble(
        spec.obs_shape, spec.action_dim, config.num_members, config.num_model_elites, config.model_hidden_sizes,
        discrete_actions=spec.discrete, learn_reward=config.learn_reward, activation=config.model_activation,
        compute_dtype=config.model_compute_dtype,
    )
    return models.ensemble_model(
        ens, propagation=config.propagation, reward_fn=None if config.learn_reward else reward_fn,
        termination_fn=termination_fn, epochs=config.model_epochs, batch_size=config.model_batch_size,
        patience=config.model_patience, max_holdout=config.max_holdout)


def _flatten_time(tree):
    return jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), tree)


def make_train(config: Config, *, env=None, model: Optional[models.Model] = None, reward_fn=None,
               termination_fn=None) -> Train:
    """Builds PETS' pure `init/step/run` for `config`.

    Args:
      env: an environment that is not registered: a gymnax env object or `(env, params)`
        (`config.env_id` then only names it).
      model: a `models.Model` (init / fit / step) to plan with instead of the ensemble;
        it predicts reward and termination itself.
      reward_fn, termination_fn: override the known functions of the env for the
        default ensemble. Without a known reward, set `learn_reward=True`.
    Raises:
      ValueError for an invalid config, a planner that does not fit the action space,
      or a missing reward function; `envs.UnknownEnvError` for an unknown env id.
    """
    cfg = config
    cfg.validate()
    env, env_params, spec = resolve_env(cfg, env)
    planner_name = planning.resolve_planner(cfg.planner, spec)
    steps = cfg.steps_per_iteration or spec.max_steps
    if steps < 1:
        raise ValueError(f"{spec.env_id} has no episode length; set steps_per_iteration.")
    if model is not None and (reward_fn is not None or termination_fn is not None):
        raise ValueError("pets: reward_fn/termination_fn configure the default ensemble; a model passed as "
                         "model= predicts its own reward and termination (build it with them).")
    own_model = model is None
    if model is None:
        if not cfg.learn_reward and reward_fn is None:
            try:
                reward_fn = envs.reward_fn(spec.env_id, env_params)
            except ValueError as err:
                raise ValueError(f"{err} Set learn_reward=True to learn the reward instead.") from None
        if termination_fn is None:
            termination_fn = envs.known_termination(spec.env_id)
        model = default_model(cfg, spec, reward_fn, termination_fn)
    model_fn = models.as_planner_model_fn(model)
    # Optimism needs to know which member steps each particle: only the own TSinf
    # ensemble says. Elsewhere the plain model_fn is kept and optimism != 0 refused.
    optimistic = own_model and _optimism_refusal(cfg, planner=planner_name) is None
    if optimistic:
        model_fn = planning.optimistic(model_fn, cfg.num_model_elites)
    planner = planning.make_planner(
        planner_name, model_fn, spec, horizon=cfg.planner_horizon, num_samples=cfg.planner_samples,
        num_elites=cfg.planner_elites, num_iters=cfg.planner_iterations, num_particles=cfg.planner_particles)
    # Check the default floats now, so that bad settings fail here, not inside a trace.
    planning.check_hparams(planner_name, planner_hparams(planner_name, cfg.hparams()))
    capacity = cfg.buffer_capacity or cfg.num_iterations * steps * cfg.num_envs

    def model_hparams(hp: HParams) -> models.ModelHParams:
        return models.ModelHParams(hp.model_learning_rate, hp.model_weight_decay, hp.holdout_ratio)

    def interact(state: State, act) -> Tuple[State, Any]:
        """`steps` env steps in B envs under `act(key, planner_state, obs)`: a lax.scan."""

        def body(carry, key):
            env_state, obs, pstate, ep_ret, done_sum, done_count, done_best = carry
            k_act, k_env = jax.random.split(key)
            with jax.named_scope("plan"):
                action, pstate, planned = act(k_act, pstate, obs)
            with jax.named_scope("env"):
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
        with jax.named_scope("model_fit"):
            model_state, info = model.fit(k_fit, state.model, state.buffer, model_hparams(state.hparams))
        returns, count, best, planned, step_reward = rollout_stats
        metrics = Metrics(
            iteration=state.iteration,
            env_steps=state.env_steps,
            episode_return=returns,
            episodes=count,
            best_episode_return=best,
            step_reward=step_reward,
            planned_return=planned,
            model_train_loss=jnp.asarray(info.train_loss, jnp.float32),
            model_holdout_mse=jnp.asarray(info.holdout_mse, jnp.float32),
            model_fit_epochs=jnp.asarray(info.epochs, jnp.float32),
        )
        return state._replace(key=key, model=model_state, iteration=state.iteration + 1), metrics

    def random_act(key, pstate, obs):
        keys = jax.random.split(key, cfg.num_envs)
        action = jax.vmap(envs.random_action, in_axes=(0, None))(keys, spec)
        return action, pstate, jnp.full((), jnp.nan, jnp.float32)

    def mpc_act(hp: HParams, model_state):
        php = planner_hparams(planner_name, hp)
        if optimistic:
            model_state = planning.OptimisticParams(model_state, hp.optimism)

        def act(key, pstate, obs):
            keys = jax.random.split(key, cfg.num_envs)
            action, pstate, info = jax.vmap(planner.plan, in_axes=(0, 0, None, 0, None))(
                keys, pstate, model_state, obs, php)
            return action, pstate, info.expected_return.mean()

        return act

    def iteration(state: State, act) -> Tuple[State, Metrics]:
        state, stats = interact(state, act)
        return refit(state, stats)

    def init(key: PRNGKey, hp: HParams) -> State:
        _check_optimism(cfg, hp, own_model)
        hp = as_float32(hp)
        k_env, k_model, k_run = jax.random.split(key, 3)
        obs, env_state = envs.batch_reset(env, env_params, k_env, cfg.num_envs)
        example = envs.example_transition(spec, obs[0])
        pstate = jax.vmap(lambda _: planner.init())(jnp.arange(cfg.num_envs))
        state = State(
            key=k_run, hparams=hp, env_state=env_state, obs=obs,
            episode_return=jnp.zeros((cfg.num_envs,), jnp.float32),
            buffer=buffers.init(capacity, example), model=model.init(k_model, example, model_hparams(hp)),
            planner=pstate, iteration=jnp.zeros((), jnp.int32), env_steps=jnp.zeros((), jnp.int32),
            warmup=None,
        )
        state, warmup = jax.lax.scan(
            lambda s, _: iteration(s, random_act), state, None, length=cfg.warmup_iterations
        )
        return state._replace(warmup=warmup)

    def step(state: State) -> Tuple[State, Metrics]:
        return iteration(state, mpc_act(state.hparams, state.model))

    def run(key: PRNGKey, hp: HParams) -> Tuple[State, Metrics]:
        return run_after_warmup(init, step, cfg.num_iterations - cfg.warmup_iterations, key, hp)

    def greedy_policy(state: State, n: int):
        php = planner_hparams(planner_name, state.hparams)
        model_state = state.model
        if optimistic:
            model_state = planning.OptimisticParams(model_state, state.hparams.optimism)
        fresh = jax.vmap(lambda _: planner.init())(jnp.arange(n))

        def act(key, obs, pstate, is_first):
            pstate = reset_where(is_first, fresh, pstate)
            action, pstate, _ = jax.vmap(planner.plan, in_axes=(0, 0, None, 0, None))(
                jax.random.split(key, n), pstate, model_state, obs, php)
            return action, pstate

        return act, fresh

    return Train(cfg, init, step, run, model, spec, greedy_policy)
