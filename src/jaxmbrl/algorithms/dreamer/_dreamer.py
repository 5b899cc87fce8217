"""Dreamer (Hafner et al. 2020, 2021, 2023), compiled end to end.

One iteration = `steps_per_iteration` vectorised env steps, a `lax.scan` over blocks of
`model_train_every` steps. In each block the envs step under the controller (the actor on the
filtered latent state, or a planner in latent space), every step is written to a
sequence replay, and then `updates_per_train` updates run: a world-model update on
`model_batch_size` sequences of `seq_len` steps, and (with the actor as controller) an
actor-critic update on imagined `imag_horizon`-step trajectories that start from every
posterior state of the batch. `train_ratio` is the number of replayed steps
(model_batch_size * seq_len per update) per env step, as in DreamerV3. After each iteration
the greedy controller is evaluated on `num_eval_episodes` fresh episodes.

Replay keeps one record per env and step (DreamerV3's layout):
`obs` o_t, `action` a_t taken at o_t, `reward` r_{t+1}, `terminated` (a_t ended the
episode in a terminal state), `is_first` (o_t starts an episode). gymnax resets
automatically, so the observation after an episode's last step is the next episode's
first, marked `is_first`.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl import buffers, envs, models, planning
from jaxmbrl.agents import actor_critic as ac_lib
from jaxmbrl.algorithms._contract import (
    NON_NEGATIVE,
    POSITIVE,
    RATE,
    UNIT,
    ConfigBase,
    as_float32,
    check_bonus_unused,
    evaluate,
    planner_hparams,
    planner_ranges,
    reset_where,
    resolve_env,
)
from jaxmbrl.algorithms._episodes import run_after_warmup, scan_env_steps
from jaxmbrl.algorithms.dreamer import _plan2explore as p2e
from jaxmbrl.exploration._uncertainty import linear_decay
from jaxmbrl.models._rssm import ENCODERS
from jaxmbrl.types import Array, PRNGKey, Range

EXPLORATIONS = ("none", "plan2explore")
CONTROLLERS = ("actor",) + tuple(p for p in planning.PLANNERS if p != "auto")


class HParams(NamedTuple):
    """Float hyperparameters, traced: `jax.vmap(train.run)(keys, hparams)` sweeps them.

    The `planner_*` fields are the floats of every registered planner, read by the one a
    planner controller names (see `jaxmbrl.planning.planner_float_fields`).
    """

    model_learning_rate: Any = 6e-4
    actor_learning_rate: Any = 2e-4
    critic_learning_rate: Any = 2e-4
    discount: Any = 0.99
    lambda_: Any = 0.95
    entropy: Any = 3e-4
    target_tau: Any = 0.02  # the slow critic's Polyak rate
    return_decay: Any = 0.99
    free_bits: Any = 1.0
    dyn_scale: Any = 0.5
    rep_scale: Any = 0.1
    explore_noise: Any = 0.3  # latent planning while training: Gaussian std (continuous) or epsilon (discrete)
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
    # Coefficient of Plan2Explore's disagreement in imagined rewards (exploration=
    # "plan2explore"); it decays linearly to intrinsic_reward_end over
    # Config.intrinsic_reward_decay_steps env steps. MBPO's fields of the same names.
    intrinsic_reward: Any = 0.0
    intrinsic_reward_end: Any = 0.0

    def actor_critic(self) -> ac_lib.ActorCriticHParams:
        return ac_lib.ActorCriticHParams(self.actor_learning_rate, self.critic_learning_rate, self.discount,
                                         self.lambda_, self.entropy, self.target_tau, self.return_decay)


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    """Static Dreamer configuration: shapes, counts and names (changing one recompiles).

    The defaults are the CartPole-v1 run of `scripts/dreamer_cartpole.py`: a small world
    model sized for a 2-core CPU. `steps_per_iteration` and `model_train_every` count
    vectorised steps (each is `num_envs` env steps).
    """

    NAME = "dreamer"
    HPARAMS = HParams

    env_id: str = "CartPole-v1"
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    num_envs: int = 4
    num_iterations: int = 63  # in total, warm-up ones included (63 x 1,600 = 100,800 env steps)
    warmup_iterations: int = 1
    steps_per_iteration: int = 400
    model_train_every: int = 8  # world-model and actor-critic updates every this many steps; divides steps_per_iteration
    train_ratio: int = 16  # replayed steps per env step (DreamerV3 uses 32-1024; CPU budget)
    model_batch_size: int = 16  # sequences per update
    seq_len: int = 32
    buffer_capacity: int = 0  # vectorised steps kept; 0 keeps the whole run
    # World model.
    deter_size: int = 128
    stoch_size: int = 16
    classes: int = 16
    hidden_size: int = 128
    mlp_layers: int = 2
    encoder: str = "auto"  # "mlp" | "cnn" | "auto" (CNN for [H, W, C] observations)
    cnn_depth: int = 16
    balance_continue: bool = True  # class-balanced continue loss (see models.world_model_loss)
    # Behaviour.
    controller: str = "actor"  # or a planner of jaxmbrl.planning: latent planning (PlaNet)
    imag_horizon: int = 15
    policy_hidden_sizes: Tuple[int, ...] = (128, 128)  # actor and critic
    planner_horizon: int = 12
    planner_samples: int = 256
    planner_elites: int = 32
    planner_iterations: int = 5
    planner_particles: int = 1
    # Exploration: "plan2explore" trains `disagreement_heads` one-step predictors of the
    # next stochastic state beside the world model and adds HParams.intrinsic_reward x
    # their disagreement to every imagined reward (the actor controller only).
    exploration: str = "none"
    disagreement_heads: int = 5
    intrinsic_reward_decay_steps: int = 0  # env steps; 0: a constant intrinsic_reward
    # Evaluation.
    num_eval_episodes: int = 4

    @classmethod
    def tiny(cls, **overrides) -> "Config":
        """Seconds-scale settings for tests."""
        base = dict(
            num_envs=2, num_iterations=3, warmup_iterations=1, steps_per_iteration=16,
            model_train_every=8, train_ratio=8, model_batch_size=4, seq_len=8, deter_size=16, stoch_size=4,
            classes=4, hidden_size=16, mlp_layers=1, cnn_depth=4, imag_horizon=4, policy_hidden_sizes=(16,),
            planner_horizon=3, planner_samples=8, planner_elites=2, planner_iterations=2, num_eval_episodes=2,
        )
        base.update(overrides)
        return cls(**base)

    @property
    def updates_per_train(self) -> int:
        """Updates after each block: train_ratio * env steps per block / replayed steps per update."""
        return round(self.train_ratio * self.model_train_every * self.num_envs / (self.model_batch_size * self.seq_len))

    def _validate(self) -> None:
        self._ints(1, "num_envs", "num_iterations", "steps_per_iteration", "model_train_every", "train_ratio",
                   "model_batch_size", "seq_len", "deter_size", "stoch_size", "classes", "hidden_size",
                   "mlp_layers", "cnn_depth", "imag_horizon", "planner_horizon", "planner_samples",
                   "planner_elites", "planner_iterations", "planner_particles", "num_eval_episodes")
        self._ints(0, "buffer_capacity")
        if not 1 <= self.warmup_iterations < self.num_iterations:
            raise ValueError(
                f"dreamer.Config.warmup_iterations={self.warmup_iterations} must be >= 1 (the "
                f"replay needs sequences) and < num_iterations={self.num_iterations}."
            )
        self._divides("model_train_every", "steps_per_iteration")
        if self.updates_per_train < 1:
            need = self.model_batch_size * self.seq_len / (self.train_ratio * self.num_envs)
            raise ValueError(
                f"dreamer.Config.train_ratio={self.train_ratio} gives fewer than one update per block of "
                f"{self.model_train_every} steps x {self.num_envs} envs (an update replays model_batch_size * "
                f"seq_len = {self.model_batch_size * self.seq_len} steps); raise train_ratio or set "
                f"model_train_every >= {need:.0f}."
            )
        if self.warmup_iterations * self.steps_per_iteration < self.seq_len:
            raise ValueError(
                f"dreamer.Config: the warm-up iterations give {self.warmup_iterations * self.steps_per_iteration} "
                f"steps per env, fewer than seq_len={self.seq_len}; raise warmup_iterations or "
                f"steps_per_iteration."
            )
        if self.buffer_capacity and self.buffer_capacity < self.seq_len:
            raise ValueError(
                f"dreamer.Config.buffer_capacity={self.buffer_capacity} is below seq_len={self.seq_len}."
            )
        # Read the registry now, not at import: a planner registered later is a controller too.
        self._choice("controller", ("actor",) + tuple(p for p in planning.PLANNERS if p != "auto"))
        self._at_most("planner_elites", "planner_samples")
        self._choice("encoder", ENCODERS)
        self._widths("policy_hidden_sizes")
        self._choice("exploration", EXPLORATIONS)
        self._ints(1, "disagreement_heads")
        self._ints(0, "intrinsic_reward_decay_steps")
        if self.exploration != "none" and self.controller != "actor":
            raise ValueError(f"dreamer.Config.exploration={self.exploration!r} rewards the actor in imagination; "
                             f"it needs controller='actor', got {self.controller!r}.")


Config.HPARAM_RANGES = {
    "model_learning_rate": POSITIVE, "actor_learning_rate": POSITIVE, "critic_learning_rate": POSITIVE,
    "discount": UNIT, "lambda_": UNIT, "entropy": NON_NEGATIVE, "target_tau": RATE, "return_decay": UNIT,
    "free_bits": NON_NEGATIVE, "dyn_scale": NON_NEGATIVE, "rep_scale": NON_NEGATIVE,
    "explore_noise": NON_NEGATIVE, **planner_ranges(),
    "intrinsic_reward": Range(), "intrinsic_reward_end": Range(),
}


class Step(NamedTuple):
    """One replay record per env (leaves [num_envs, ...] per stored step)."""

    obs: Array  # o_t
    action: Array  # a_t: [A] float32 or [] int32
    reward: Array  # r_{t+1}
    terminated: Array  # bool: a_t ended the episode in a terminal state
    is_first: Array  # bool: o_t starts an episode


class Metrics(NamedTuple):
    """Per-iteration metrics (each a scalar; stacked [iterations] by `run`)."""

    iteration: Array  # int32, 0-based, warm-up iterations included
    env_steps: Array  # int32, total so far
    episode_return: Array  # mean return of training episodes completed this iteration (NaN if none)
    episodes: Array  # int32
    eval_return: Array  # mean return of the greedy controller's evaluation episodes (NaN while exploring)
    model_loss: Array  # world-model loss, mean over the iteration's updates (NaN while exploring)
    reconstruction: Array
    reward_loss: Array
    cont_loss: Array
    kl: Array  # KL(q || p) in nats, before free bits
    actor_loss: Array
    critic_loss: Array
    entropy: Array
    imagined_return: Array  # mean lambda return of imagined trajectories
    return_scale: Array
    # Plan2Explore: the heads' mean disagreement over imagined steps (before its
    # coefficient) and their loss; NaN while exploring at random or with exploration="none".
    model_disagreement: Array
    disagreement_loss: Array


class State(NamedTuple):
    """Everything a Dreamer run carries between iterations (one seed; the runner vmaps it).

    A checkpoint is this pytree; `env_steps` counts the env steps taken so far.
    """

    key: PRNGKey
    hparams: HParams
    env_state: Any  # gymnax state [B, ...]
    obs: Array  # [B, *obs_shape]
    latent: models.RSSMState  # [B] posterior of the last step
    prev_action: Array  # [B, A] | [B]
    is_first: Array  # [B] bool: `obs` starts an episode
    planner: Any  # the planner's state [B, ...] with a planner controller, else None
    episode_return: Array  # [B]
    buffer: buffers.BufferState  # Step records with leaves [C, B, ...]
    model_params: Any
    model_opt: Any
    agent: ac_lib.ActorCriticState
    explore_params: Any  # Plan2Explore's heads (leaves [K, ...]), else None
    explore_opt: Any
    iteration: Array  # int32
    env_steps: Array  # int32
    warmup: Metrics  # [warmup_iterations]


class Train(NamedTuple):
    """`init(key, hparams) -> State`; `step(state) -> (state, Metrics)`;
    `run(key, hparams) -> (state, Metrics[num_iterations])`. All pure and jittable."""

    config: Config
    init: Callable[[PRNGKey, HParams], State]
    step: Callable[[State], Tuple[State, Metrics]]
    run: Callable[[PRNGKey, HParams], Tuple[State, Metrics]]
    rssm: models.RSSM
    agent: ac_lib.ActorCritic
    spec: envs.EnvSpec
    # `policy(state, n) -> (act, policy_state)`: the greedy controller of `state` for n
    # envs, in `evaluate`'s shape (the evaluation's own; `jaxmbrl render` replays it).
    policy: Callable[[Any, int], Tuple[Callable, Any]] = None


def supports(spec: envs.EnvSpec) -> Optional[str]:
    """Any action space; the evaluation needs an episode length. Images get the CNN."""
    if spec.max_steps < 1:
        return None
    return "cnn" if len(spec.obs_shape) == 3 else ""


_LOSS_FIELDS = ("model_loss", "reconstruction", "reward_loss", "cont_loss", "kl", "actor_loss", "critic_loss",
                "entropy", "imagined_return", "return_scale", "model_disagreement", "disagreement_loss")


def sample_sequences(key: PRNGKey, buffer: buffers.BufferState, batch_size: int, seq_len: int) -> Step:
    """[batch_size, seq_len] runs of one env's consecutive records; each run's first
    record is marked `is_first`, since the model starts it from the zero state."""
    batch = buffers.sample_env_sequences(key, buffer, batch_size, seq_len)
    return batch._replace(is_first=batch.is_first.at[:, 0].set(True))


def make_train(config: Config, *, env=None) -> Train:
    """Builds Dreamer's pure `init/step/run` for `config`.

    Args:
      env: an environment that is not registered: a gymnax env object or `(env, params)`.
    Raises:
      ValueError for an invalid config or a controller that does not fit the action
      space; `envs.UnknownEnvError` for an unknown env id.
    """
    cfg = config
    cfg.validate()
    env, env_params, spec = resolve_env(cfg, env)
    if spec.max_steps < 1:
        raise ValueError(f"{spec.env_id} has no episode length; Dreamer's evaluation needs one.")
    use_planner = cfg.controller != "actor"
    if cfg.encoder == "cnn" and len(spec.obs_shape) != 3:
        raise ValueError(
            f"dreamer.Config.encoder='cnn' needs image-like observations [H, W, C], but {spec.env_id} has "
            f"obs_shape {spec.obs_shape}; use encoder='mlp' or 'auto'."
        )
    rssm = models.make_rssm(spec.obs_shape, spec.action_dim, discrete_actions=spec.discrete,
                            deter_size=cfg.deter_size, stoch_size=cfg.stoch_size, classes=cfg.classes,
                            hidden_size=cfg.hidden_size, mlp_layers=cfg.mlp_layers, encoder=cfg.encoder,
                            cnn_depth=cfg.cnn_depth)
    agent = ac_lib.make_actor_critic(rssm.config.feature_size, spec.action_dim, discrete=spec.discrete,
                                     low=spec.low, high=spec.high, hidden_sizes=cfg.policy_hidden_sizes)
    latent_model = models.latent_model_fn(rssm)
    plan2explore = cfg.exploration == "plan2explore"
    heads = p2e.make_heads(rssm, cfg.disagreement_heads, cfg.hidden_size, cfg.mlp_layers) if plan2explore else None
    bonus_coefficient = lambda hp, count: linear_decay(  # noqa: E731
        hp.intrinsic_reward, hp.intrinsic_reward_end, cfg.intrinsic_reward_decay_steps)(count)

    planner = None
    if use_planner:
        planner_name = planning.resolve_planner(cfg.controller, spec)
        planner = planning.make_planner(
            planner_name, latent_model, spec, horizon=cfg.planner_horizon, num_samples=cfg.planner_samples,
            num_elites=cfg.planner_elites, num_iters=cfg.planner_iterations,
            num_particles=cfg.planner_particles)
        # Check the default floats now, so that bad settings fail here, not inside a trace.
        planning.check_hparams(planner_name, planner_hparams(planner_name, cfg.hparams()))

    blocks = cfg.steps_per_iteration // cfg.model_train_every
    updates = cfg.updates_per_train
    capacity = cfg.buffer_capacity or cfg.num_iterations * cfg.steps_per_iteration
    env_steps_per_iteration = cfg.steps_per_iteration * cfg.num_envs
    zero_action = jnp.zeros(spec.action_shape, spec.action_dtype)
    nan = jnp.full((), jnp.nan, jnp.float32)
    nan_losses = {name: nan for name in _LOSS_FIELDS}

    # ----- acting -----------------------------------------------------------------------

    def control(key, state: State, post: models.RSSMState, is_first, deterministic: bool):
        """Actions [B] for posterior states [B]; returns `(actions, planner_state)`."""
        num = is_first.shape[0]
        if not use_planner:
            return agent.act(key, state.agent, models.features(post), deterministic), state.planner
        hp = state.hparams
        fresh = jax.tree.map(lambda x: jnp.broadcast_to(x, (num,) + x.shape), planner.init())
        pstate = reset_where(is_first, fresh, state.planner)
        k_plan, k_noise, k_random = jax.random.split(key, 3)
        actions, pstate, _ = jax.vmap(planner.plan, in_axes=(0, 0, None, 0, None))(
            jax.random.split(k_plan, num), pstate, state.model_params, post, planner_hparams(planner_name, hp))
        if not deterministic:
            if spec.discrete:
                random = jax.random.randint(k_random, (num,), 0, spec.num_actions, dtype=actions.dtype)
                explore = jax.random.uniform(k_noise, (num,)) < hp.explore_noise
                actions = jnp.where(explore, random, actions)
            else:
                low, high = jnp.asarray(spec.low), jnp.asarray(spec.high)
                noise = hp.explore_noise * 0.5 * (high - low) * jax.random.normal(k_noise, actions.shape)
                actions = jnp.clip(actions + noise, low, high)
        return actions, pstate

    def act_and_step(key, state: State, explore_randomly: bool):
        """One vectorised env step; returns `(state, Step record [B], Transition [B])`."""
        k_filter, k_act, k_env = jax.random.split(key, 3)
        post, _, _ = models.filter_step(rssm, state.model_params, k_filter, state.latent, state.prev_action,
                                        state.obs, state.is_first)
        if explore_randomly:
            keys = jax.random.split(k_act, cfg.num_envs)
            action = jax.vmap(envs.random_action, in_axes=(0, None))(keys, spec)
            pstate = state.planner
        else:
            with jax.named_scope("plan" if use_planner else "act"):
                action, pstate = control(k_act, state, post, state.is_first, deterministic=False)
        with jax.named_scope("env"):
            transition, obs, env_state = envs.batch_step(env, env_params, k_env, state.env_state, state.obs, action)
        record = Step(state.obs, action, transition.reward, transition.terminated, state.is_first)
        state = state._replace(
            env_state=env_state, obs=obs, latent=post, prev_action=action, planner=pstate,
            is_first=transition.terminated | transition.truncated,
            buffer=buffers.add(state.buffer, jax.tree.map(lambda a: a[None], record)),
            env_steps=state.env_steps + cfg.num_envs,
        )
        return state, transition

    # ----- learning ---------------------------------------------------------------------

    def train_once(state: State, key) -> Tuple[State, dict]:
        hp = state.hparams
        k_sample, k_model, k_imagine = jax.random.split(key, 3)
        batch = sample_sequences(k_sample, state.buffer, cfg.model_batch_size, cfg.seq_len)
        grad_fn = jax.value_and_grad(models.world_model_loss, argnums=1, has_aux=True)
        with jax.named_scope("model_fit"):
            (_, (info, posterior)), grads = grad_fn(
                rssm, state.model_params, k_model, batch.obs, batch.action, batch.reward, batch.terminated,
                batch.is_first, hp.free_bits, hp.dyn_scale, hp.rep_scale, cfg.balance_continue)
            params, opt, _ = ac_lib.clipped_adam_step(grads, state.model_opt, state.model_params,
                                                      hp.model_learning_rate, 1000.0)
        out = dict(model_loss=info.loss, reconstruction=info.reconstruction, reward_loss=info.reward,
                   cont_loss=info.cont, kl=info.kl)
        agent_state = state.agent
        explore_params, explore_opt = state.explore_params, state.explore_opt
        out.update(model_disagreement=nan, disagreement_loss=nan)
        if plan2explore:
            with jax.named_scope("disagreement_fit"):
                loss, grads = jax.value_and_grad(lambda p: p2e.heads_loss(heads, p, posterior, batch.action,
                                                                          batch.is_first))(explore_params)
                explore_params, explore_opt, _ = ac_lib.clipped_adam_step(grads, explore_opt, explore_params,
                                                                          hp.model_learning_rate, 1000.0)
            out.update(disagreement_loss=loss)
        if use_planner:
            out.update({name: nan for name in _LOSS_FIELDS[5:10]})
        else:
            start = jax.tree.map(lambda a: jax.lax.stop_gradient(a.reshape((-1,) + a.shape[2:])), posterior)
            policy = lambda k, feat: agent.act(k, agent_state, feat, False)
            with jax.named_scope("model_rollout"):
                states, actions = models.imagine(rssm, params, k_imagine, policy, start, cfg.imag_horizon)
                feats = models.features(states)  # [b*T, H+1, F]
                rewards = models.reward(rssm, params, feats[:, 1:])
                if plan2explore:
                    bonus = p2e.intrinsic_reward(heads, explore_params, feats, actions)  # [b*T, H]
                    rewards = rewards + bonus_coefficient(hp, state.env_steps) * bonus
                    out.update(model_disagreement=bonus.mean())
                conts = jax.nn.sigmoid(models.continue_logit(rssm, params, feats[:, 1:]))
            with jax.named_scope("policy_update"):
                agent_state, ac_info = agent.update(agent_state, feats, actions, rewards, conts,
                                                    hp.actor_critic())
            out.update(actor_loss=ac_info.actor_loss, critic_loss=ac_info.critic_loss, entropy=ac_info.entropy,
                       imagined_return=ac_info.imagined_return, return_scale=ac_info.return_scale)
        return state._replace(model_params=params, model_opt=opt, agent=agent_state, explore_params=explore_params,
                              explore_opt=explore_opt), out

    def train_phase(state: State) -> Tuple[State, dict]:
        key, k_train = jax.random.split(state.key)
        state, outs = jax.lax.scan(train_once, state._replace(key=key), jax.random.split(k_train, updates))
        return state, {k: v.mean() for k, v in outs.items()}

    # ----- loops ------------------------------------------------------------------------

    def env_steps_scan(state: State, num_steps: int, explore_randomly: bool):
        step_fn = lambda key, state: (*act_and_step(key, state, explore_randomly), None)  # noqa: E731
        return scan_env_steps(step_fn, state, num_steps)[:3]

    def greedy_policy(state: State, n: int):
        """The greedy controller: filter the observation into the latent, then act or plan."""

        def act(k, obs, carry, is_first):
            latent, prev_action, pstate = carry
            k_filter, k_act = jax.random.split(k)
            post, _, _ = models.filter_step(rssm, state.model_params, k_filter, latent, prev_action, obs, is_first)
            action, pstate = control(k_act, state._replace(planner=pstate), post, is_first, deterministic=True)
            return action, (post, action, pstate)

        pstate = None
        if use_planner:
            pstate = jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), planner.init())
        carry = (models.initial_state(rssm, (n,)), jnp.zeros((n,) + spec.action_shape, spec.action_dtype), pstate)
        return act, carry

    def greedy_return(key, state: State):
        """Mean return of the greedy controller's first episode in each of `num_eval_episodes` envs."""
        n = cfg.num_eval_episodes
        return evaluate(env, env_params, key, *greedy_policy(state, n), n, spec.max_steps)

    def metrics_of(state, done_sum, done_count, eval_return, losses):
        return Metrics(
            iteration=state.iteration, env_steps=state.env_steps,
            episode_return=jnp.where(done_count > 0, done_sum / jnp.maximum(done_count, 1), jnp.nan),
            episodes=done_count, eval_return=eval_return, **losses,
        )

    def explore_iteration(state: State) -> Tuple[State, Metrics]:
        state, done_sum, done_count = env_steps_scan(state, cfg.steps_per_iteration, True)
        metrics = metrics_of(state, done_sum, done_count, nan, nan_losses)
        return state._replace(iteration=state.iteration + 1), metrics

    def block(carry, _):
        state, done_sum, done_count = carry
        state, d_sum, d_count = env_steps_scan(state, cfg.model_train_every, False)
        state, losses = train_phase(state)
        return (state, done_sum + d_sum, done_count + d_count), losses

    def step(state: State) -> Tuple[State, Metrics]:
        carry = (state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        (state, done_sum, done_count), losses = jax.lax.scan(block, carry, None, length=blocks)
        key, k_eval = jax.random.split(state.key)
        state = state._replace(key=key)
        with jax.named_scope("eval"):
            eval_return = greedy_return(k_eval, state)
        metrics = metrics_of(state, done_sum, done_count, eval_return, {k: v.mean() for k, v in losses.items()})
        return state._replace(iteration=state.iteration + 1), metrics

    def init(key: PRNGKey, hp: HParams) -> State:
        hp = as_float32(hp)
        check_bonus_unused(cfg, hp, "plan2explore")
        k_env, k_model, k_agent, k_run = jax.random.split(key, 4)
        obs, env_state = envs.batch_reset(env, env_params, k_env, cfg.num_envs)
        model_params = rssm.init(k_model)
        example = Step(obs, jnp.zeros((cfg.num_envs,) + spec.action_shape, spec.action_dtype),
                       jnp.zeros((cfg.num_envs,), jnp.float32), jnp.zeros((cfg.num_envs,), jnp.bool_),
                       jnp.zeros((cfg.num_envs,), jnp.bool_))
        pstate = None
        if use_planner:
            pstate = jax.tree.map(lambda x: jnp.broadcast_to(x, (cfg.num_envs,) + x.shape), planner.init())
        # Folded from the run key, so that exploration="none" keeps every other draw as it was.
        explore_params = heads.init(jax.random.fold_in(k_model, 1)) if plan2explore else None
        state = State(
            key=k_run, hparams=hp, env_state=env_state, obs=obs,
            latent=models.initial_state(rssm, (cfg.num_envs,)), prev_action=example.action,
            is_first=jnp.ones((cfg.num_envs,), jnp.bool_), planner=pstate,
            episode_return=jnp.zeros((cfg.num_envs,), jnp.float32), buffer=buffers.init(capacity, example),
            model_params=model_params, model_opt=ac_lib.adam_init(model_params), agent=agent.init(k_agent),
            explore_params=explore_params, explore_opt=None if explore_params is None else ac_lib.adam_init(
                explore_params),
            iteration=jnp.zeros((), jnp.int32), env_steps=jnp.zeros((), jnp.int32), warmup=None,
        )
        state, warmup = jax.lax.scan(lambda s, _: explore_iteration(s), state, None,
                                     length=cfg.warmup_iterations)
        return state._replace(warmup=warmup)

    def run(key: PRNGKey, hp: HParams) -> Tuple[State, Metrics]:
        return run_after_warmup(init, step, cfg.num_iterations - cfg.warmup_iterations, key, hp)

    return Train(cfg, init, step, run, rssm, agent, spec, greedy_policy)
