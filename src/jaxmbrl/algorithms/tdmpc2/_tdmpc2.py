"""TD-MPC2 (Hansen, Su and Wang, ICLR 2024): value-guided planning in a learned latent
space, compiled end to end.

One iteration = `steps_per_iteration` vectorised env steps (a `lax.scan`). At each step
every env encodes its observation and plans with `planning.mppi_elites` in latent space:
the learned dynamics and reward score `planner_horizon`-step action sequences, a terminal
value Q(z_H, pi(z_H)) (the mean of the Q heads at the policy's mean action) closes each
one, and `planner_proposals` sequences rolled out with the policy prior join every
population. While training, the planner's final std is added as Gaussian noise to its
action. After each step `policy_updates_per_step` updates run on `model_batch_size`
windows of `unroll_steps` (H) consecutive steps:

- the joint model loss: the encoded first observation is rolled out by the dynamics along
  the stored actions; at step t the latent is pulled towards the (stop-gradient)
  encoding of the observed successor (consistency), the reward head towards r_t and each
  Q head towards r_t + discount * (1 - terminated_t) * min of two random target Q heads
  at (z_{t+1}, a ~ pi(z_{t+1})), all two-hot in symlog space, weighted by rho^t and
  `consistency_coef`, `reward_coef`, `value_coef`;
- the policy: over the (stop-gradient) rolled-out latents it maximises the mean Q,
  divided by a running 5-95th percentile range (at least 1), plus `entropy_coef` times
  its entropy, weighted by rho^t;
- the target Q heads move towards the online ones by `target_tau` (Polyak).

Steps of a window past an episode's end are masked. The encoder's learning rate is
`encoder_lr_scale` times the others' (TD-MPC2: 0.3), gradients are clipped to
`max_grad_norm`. The first `warmup_iterations` act uniformly at random (TD-MPC2's seed
steps); `init` runs them, so every `step` is the same compiled iteration. After each
iteration the planner acts without noise on `num_eval_episodes` fresh episodes.

Not in this version: TD-MPC2's multitask embeddings and its 1% dropout in the Q heads;
predicted termination (values stop at stored terminations only).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import optax

from jaxmbrl import buffers, envs, models, planning
from jaxmbrl.agents import returns as returns_lib
from jaxmbrl.agents import sac as sac_lib
from jaxmbrl.algorithms._contract import (
    NON_NEGATIVE,
    POSITIVE,
    RATE,
    UNIT,
    ConfigBase,
    as_float32,
    evaluate,
    reset_where,
    resolve_env,
)
from jaxmbrl.algorithms._episodes import run_after_warmup, scan_env_steps
from jaxmbrl.models._muzero import head_loss
from jaxmbrl.models._optim import adam, optimizer_step
from jaxmbrl.models._tdmpc2 import consistency_loss
from jaxmbrl.types import Array, PRNGKey


class HParams(NamedTuple):
    """Float hyperparameters, traced: `jax.vmap(train.run)(keys, hparams)` sweeps them."""

    learning_rate: Any = 3e-4
    encoder_lr_scale: Any = 0.3
    discount: Any = 0.99
    target_tau: Any = 0.01
    rho: Any = 0.5  # temporal weight of step t's losses: rho^t
    consistency_coef: Any = 20.0
    reward_coef: Any = 0.1
    value_coef: Any = 0.1
    entropy_coef: Any = 1e-4
    max_grad_norm: Any = 20.0
    planner_temperature: Any = 2.0  # mppi_elites: softmax temperature over elite returns
    planner_min_std: Any = 0.025  # fraction of the action range
    planner_max_std: Any = 1.0


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    """Static TD-MPC2 configuration: shapes, counts and names (changing one recompiles).

    The defaults are the Pendulum-v1 run of `scripts/tdmpc2_pendulum.py`; the planner's
    counts are the paper's (6 iterations, 512 samples, 64 elites, 24 policy
    trajectories, horizon 3), the networks are CPU-sized (the paper's smallest is wider).
    """

    NAME = "tdmpc2"
    HPARAMS = HParams

    env_id: str = "Pendulum-v1"
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    num_envs: int = 1
    num_iterations: int = 15  # in total, warm-up ones included
    warmup_iterations: int = 1
    steps_per_iteration: int = 200
    buffer_capacity: int = 0  # vectorised steps kept; 0: the whole run
    policy_updates_per_step: int = 1
    model_batch_size: int = 256  # windows per update
    unroll_steps: int = 3  # H of the training windows
    # Planner (mppi_elites).
    planner_horizon: int = 3
    planner_samples: int = 512
    planner_elites: int = 64
    planner_iterations: int = 6
    planner_proposals: int = 24  # policy-prior sequences in every population
    # Networks.
    latent_size: int = 64
    simnorm_dim: int = 8
    model_hidden_sizes: Tuple[int, ...] = (256, 256)  # encoder, dynamics, reward
    policy_hidden_sizes: Tuple[int, ...] = (256, 256)  # each Q head, the policy
    num_q: int = 5
    value_bins: int = 101
    # Evaluation.
    num_eval_episodes: int = 2

    @classmethod
    def tiny(cls, **overrides) -> "Config":
        """Seconds-scale settings for tests."""
        base = dict(
            num_envs=2, num_iterations=3, warmup_iterations=1, steps_per_iteration=8, model_batch_size=8,
            unroll_steps=2, planner_horizon=2, planner_samples=16, planner_elites=4, planner_iterations=2,
            planner_proposals=2, latent_size=8, simnorm_dim=4, model_hidden_sizes=(16,), policy_hidden_sizes=(16,),
            num_q=2, value_bins=11, num_eval_episodes=2,
        )
        base.update(overrides)
        return cls(**base)

    def _validate(self) -> None:
        self._ints(1, "num_envs", "num_iterations", "steps_per_iteration", "policy_updates_per_step",
                   "model_batch_size", "unroll_steps", "planner_horizon", "planner_samples", "planner_elites",
                   "planner_iterations", "latent_size", "simnorm_dim", "num_q", "num_eval_episodes")
        self._ints(0, "buffer_capacity", "planner_proposals")
        if not 1 <= self.warmup_iterations < self.num_iterations:
            raise ValueError(
                f"tdmpc2.Config.warmup_iterations={self.warmup_iterations} must be >= 1 (the replay needs "
                f"windows) and < num_iterations={self.num_iterations}."
            )
        if self.warmup_iterations * self.steps_per_iteration < self.unroll_steps:
            raise ValueError(
                f"tdmpc2.Config: the warm-up gives {self.warmup_iterations * self.steps_per_iteration} steps per "
                f"env, fewer than one window of unroll_steps={self.unroll_steps}; raise warmup_iterations."
            )
        self._at_most("planner_elites", "planner_samples")
        if self.planner_proposals > self.planner_samples - self.planner_elites:
            raise ValueError(
                f"tdmpc2.Config.planner_proposals={self.planner_proposals} leaves too few fresh samples: at most "
                f"planner_samples - planner_elites = {self.planner_samples - self.planner_elites}."
            )
        if self.latent_size % self.simnorm_dim:
            raise ValueError(f"tdmpc2.Config.latent_size={self.latent_size} must be a multiple of "
                             f"simnorm_dim={self.simnorm_dim}.")
        if self.num_q < 2:
            raise ValueError(f"tdmpc2.Config.num_q={self.num_q} must be at least 2 (targets take the min of two).")
        if self.value_bins < 2:
            raise ValueError(f"tdmpc2.Config.value_bins={self.value_bins} must be at least 2.")
        self._widths("model_hidden_sizes", "policy_hidden_sizes")


Config.HPARAM_RANGES = {
    "learning_rate": POSITIVE, "encoder_lr_scale": POSITIVE, "discount": UNIT, "target_tau": RATE, "rho": UNIT,
    "consistency_coef": NON_NEGATIVE, "reward_coef": NON_NEGATIVE, "value_coef": NON_NEGATIVE,
    "entropy_coef": NON_NEGATIVE, "max_grad_norm": POSITIVE, "planner_temperature": POSITIVE,
    "planner_min_std": POSITIVE, "planner_max_std": POSITIVE,
}


class Step(NamedTuple):
    """One replay record per env (leaves [num_envs, ...] per stored step)."""

    obs: Array  # o_t
    action: Array  # [A] a_t in env units
    reward: Array  # r_{t+1}
    next_obs: Array  # the true successor (the final observation where an episode ended)
    terminated: Array  # bool
    truncated: Array  # bool


class Metrics(NamedTuple):
    """Per-iteration metrics (each a scalar; stacked [iterations] by `run`)."""

    iteration: Array  # int32, 0-based, warm-up iterations included
    env_steps: Array  # int32, total so far
    episode_return: Array  # mean return of training episodes completed this iteration (NaN if none)
    episodes: Array  # int32
    eval_return: Array  # mean return of the noise-free planner's evaluation episodes (NaN while exploring)
    model_loss: Array  # the joint loss, mean over the iteration's updates (NaN while exploring)
    consistency_loss: Array
    reward_loss: Array
    value_loss: Array
    policy_loss: Array
    q_scale: Array  # the running 5-95th percentile range of Q the policy divides by
    planned_return: Array  # mean planner estimate (rewards + terminal Q) of its actions


class Learner(NamedTuple):
    """The networks' parameters and optimiser states (the encoder has its own optimiser
    for its scaled learning rate)."""

    params: Any  # {"params": {...}} of models.make_tdmpc2_model
    target_q: Any  # the Q heads' parameters, Polyak-averaged
    encoder_opt: Any
    model_opt: Any  # dynamics, reward, Q heads
    policy_opt: Any
    q_scale: returns_lib.ReturnScale


class State(NamedTuple):
    """Everything a TD-MPC2 run carries between iterations (one seed; the runner vmaps it).

    A checkpoint is this pytree; `env_steps` counts the env steps taken so far.
    """

    key: PRNGKey
    hparams: HParams
    env_state: Any  # gymnax state [B, ...]
    obs: Array  # [B, *obs_shape]
    episode_return: Array  # [B]
    planner: planning.PlannerState  # [B, ...]
    buffer: buffers.BufferState  # Step records with leaves [C, B, ...]
    learner: Learner
    iteration: Array  # int32
    env_steps: Array  # int32
    warmup: Metrics  # [warmup_iterations]


class Train(NamedTuple):
    """`init(key, hparams) -> State`; `step(state) -> (state, Metrics)`;
    `run(key, hparams) -> (state, Metrics[num_iterations])`. All pure and jittable.

    `act(key, params, obs [n, ...], planner_state [n], hparams, explore: bool) ->
    (actions [n, A], planner_state, planned_return [n])` encodes and plans as the loop does
    (`explore` adds the planner's std as noise); `planner.init()` gives a fresh planner
    state for one env.
    """

    config: Config
    init: Callable[[PRNGKey, HParams], State]
    step: Callable[[State], Tuple[State, Metrics]]
    run: Callable[[PRNGKey, HParams], Tuple[State, Metrics]]
    model: models.TDMPC2Model
    spec: envs.EnvSpec
    act: Callable[..., Tuple[Array, Any, Array]]
    planner: planning.Planner
    # `policy(state, n) -> (act, policy_state)`: the greedy controller of `state` for n
    # envs, in `evaluate`'s shape (the evaluation's own; `jaxmbrl render` replays it).
    policy: Callable[[Any, int], Tuple[Callable, Any]] = None


def supports(spec: envs.EnvSpec) -> Optional[str]:
    """Continuous actions with vector observations; the evaluation needs an episode length."""
    if spec.discrete or len(spec.obs_shape) != 1 or spec.max_steps < 1:
        return None
    return ""


_ENCODER = "encoder"
_POLICY = "policy_mlp"
_Q = "q_heads"
_LOSS_FIELDS = ("model_loss", "consistency_loss", "reward_loss", "value_loss", "policy_loss", "q_scale")
# The optimisers' floats are written in at every step; these are only the init values.
_ADAM = adam(3e-4)
_POLICY_ADAM = adam(3e-4, eps=1e-5)


def _split(params):
    """{"params": tree} -> (encoder, dynamics/reward/Q, policy) subtrees."""
    inner = params["params"]
    return ({_ENCODER: inner[_ENCODER]}, {k: v for k, v in inner.items() if k not in (_ENCODER, _POLICY)},
            {_POLICY: inner[_POLICY]})


def _join(encoder, model, policy):
    return {"params": {**encoder, **model, **policy}}


def make_train(config: Config, *, env=None) -> Train:
    """Builds TD-MPC2's pure `init/step/run` for `config`.

    Args:
      env: an environment that is not registered: a gymnax env object or `(env, params)`.
    Raises:
      ValueError for an invalid config, discrete actions or image observations;
      `envs.UnknownEnvError` for an unknown env id.
    """
    cfg = config
    cfg.validate()
    env, env_params, spec = resolve_env(cfg, env)
    if spec.discrete:
        raise ValueError(
            f"tdmpc2 plans continuous actions (MPPI), but {spec.env_id} is discrete ({spec.num_actions} actions); "
            f"use muzero, dreamer, pets or dyna there."
        )
    if len(spec.obs_shape) != 1:
        raise ValueError(f"tdmpc2's encoder is an MLP over vector observations; {spec.env_id} has obs_shape "
                         f"{spec.obs_shape}; use dreamer or muzero (CNN encoders) there.")
    if spec.max_steps < 1:
        raise ValueError(f"{spec.env_id} has no episode length; TD-MPC2's evaluation needs one.")
    net = models.make_tdmpc2_model(spec.obs_shape, spec.action_dim, latent_size=cfg.latent_size,
                                   hidden_sizes=cfg.model_hidden_sizes, head_hidden_sizes=cfg.policy_hidden_sizes,
                                   num_q=cfg.num_q, num_bins=cfg.value_bins, simnorm_dim=cfg.simnorm_dim)
    low, high = jnp.asarray(spec.low, jnp.float32), jnp.asarray(spec.high, jnp.float32)
    mid, half = (low + high) / 2, (high - low) / 2
    to_net = lambda a: (a - mid) / half  # noqa: E731 (env units -> [-1, 1])
    to_env = lambda a: mid + half * a  # noqa: E731
    capacity = cfg.buffer_capacity or cfg.num_iterations * cfg.steps_per_iteration
    nan = jnp.full((), jnp.nan, jnp.float32)
    a_dim = spec.action_dim

    # ----- the latent model the planner searches -----------------------------------------

    def latent_step(key, params, z, action):
        a = to_net(action)
        return net.dynamics(params, z, a), net.value(net.reward(params, z, a)), jnp.zeros((), jnp.bool_)

    def terminal_value(params, z):
        mean, _ = net.policy(params, z)
        return net.value(net.q(params, z, jnp.tanh(mean))).mean(0)

    def prior(key, params, z):
        mean, log_std = net.policy(params, z)
        return to_env(sac_lib.tanh_gaussian_sample(key, mean, log_std)[0])

    planner = planning.mppi_elites(
        latent_step, spec, horizon=cfg.planner_horizon, num_samples=cfg.planner_samples,
        num_elites=cfg.planner_elites, num_iters=cfg.planner_iterations, value_fn=terminal_value,
        proposal=prior if cfg.planner_proposals else None, num_proposals=cfg.planner_proposals)

    def planner_hparams(hp: HParams):
        return planning.MPPIElitesHParams(temperature=hp.planner_temperature, min_std=hp.planner_min_std,
                                          max_std=hp.planner_max_std, discount=hp.discount)

    def act(key, params, obs, pstate, hp: HParams, explore: bool):
        """Plans from each of obs [n]: (actions [n, A], planner states, planned returns [n])."""
        k_plan, k_noise = jax.random.split(key)
        z = net.encode(params, obs)
        n = obs.shape[0]
        actions, pstate, info = jax.vmap(planner.plan, in_axes=(0, 0, None, 0, None))(
            jax.random.split(k_plan, n), pstate, params, z, planner_hparams(hp))
        if explore:
            noise = pstate.std[:, 0] * jax.random.normal(k_noise, actions.shape, jnp.float32)
            actions = jnp.clip(actions + noise, low, high)
        return actions, pstate, info.expected_return

    def fresh_planner(n):
        return jax.tree.map(lambda x: jnp.broadcast_to(x, (n,) + x.shape), planner.init())

    # ----- learning ---------------------------------------------------------------------

    def td_targets(key, params, target_q, next_z, reward, terminated, discount):
        """[H, b] targets r + discount (1 - terminated) min of two random target heads at (z', pi(z'))."""
        k_pi, k_heads = jax.random.split(key)
        mean, log_std = net.policy(params, next_z)
        a, _ = sac_lib.tanh_gaussian_sample(k_pi, mean, log_std)
        target_params = {"params": {**params["params"], _Q: target_q}}
        qs = net.value(net.q(target_params, next_z, a))  # [num_q, H, b]
        pick = jax.random.choice(k_heads, cfg.num_q, (2,), replace=False)
        return reward + discount * (1.0 - terminated.astype(jnp.float32)) * qs[pick].min(0)

    def model_loss(trainable, frozen_policy, target_q, key, batch: Step, hp: HParams):
        """Windows [b, H] -> (joint loss, (terms, rolled-out latents [H + 1, b, L]))."""
        encoder, model = trainable
        params = _join(encoder, model, frozen_policy)
        tm = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), batch)  # [H, b, ...]
        done = (tm.terminated | tm.truncated).astype(jnp.float32)
        valid = jnp.concatenate([jnp.ones((1,) + done.shape[1:]), jnp.cumprod(1.0 - done[:-1], 0)])  # [H, b]
        next_z = jax.lax.stop_gradient(net.encode(params, tm.next_obs))  # [H, b, L]
        actions = to_net(tm.action)

        def unroll(z, a):
            z_next = net.dynamics(params, z, a)
            return z_next, (z, z_next)

        _, (zs, predicted) = jax.lax.scan(unroll, net.encode(params, tm.obs[0]), actions)  # [H, b, L] each
        weights = hp.rho ** jnp.arange(cfg.unroll_steps, dtype=jnp.float32)
        consistency = jax.vmap(consistency_loss, in_axes=(1, 1, None, 1))(predicted, next_z, weights, valid).mean()
        per_step = lambda x: jnp.sum(weights[:, None] * valid * x, 0).mean() / cfg.unroll_steps  # noqa: E731
        reward = per_step(head_loss(net.reward(params, zs, actions), tm.reward, cfg.value_bins))
        targets = jax.lax.stop_gradient(td_targets(key, params, target_q, next_z, tm.reward, tm.terminated,
                                                   hp.discount))
        q_losses = head_loss(net.q(params, zs, actions), jnp.broadcast_to(targets, (cfg.num_q,) + targets.shape),
                             cfg.value_bins)  # [num_q, H, b]
        value = per_step(q_losses.mean(0))
        loss = hp.consistency_coef * consistency + hp.reward_coef * reward + hp.value_coef * value
        latents = jnp.concatenate([zs, predicted[-1:]])
        return loss, ((consistency, reward, value), jax.lax.stop_gradient(latents), valid)

    def policy_loss(policy, params, latents, valid, q_scale, key, hp: HParams):
        """Latents [H + 1, b, L] -> (loss, mean Q at t = 0)."""
        params = _join(*_split(params)[:2], policy)
        mean, log_std = net.policy(params, latents)
        a, log_prob = sac_lib.tanh_gaussian_sample(key, mean, log_std)
        q = net.value(net.q(jax.lax.stop_gradient(params), latents, a)).mean(0)  # [H + 1, b]
        scale = jnp.maximum(q_scale.high - q_scale.low, 1.0)
        weights = hp.rho ** jnp.arange(cfg.unroll_steps + 1, dtype=jnp.float32)
        alive = jnp.concatenate([valid, valid[-1:]])  # the last predicted latent shares the last step's mask
        per_step = ((hp.entropy_coef * log_prob - q / scale) * alive).mean(1)
        return jnp.sum(weights * per_step) / (cfg.unroll_steps + 1), q[0]

    def update(learner: Learner, key, buffer, hp: HParams) -> Tuple[Learner, dict]:
        k_sample, k_model, k_policy = jax.random.split(key, 3)
        batch = buffers.sample_env_sequences(k_sample, buffer, cfg.model_batch_size, cfg.unroll_steps)
        encoder, model, policy = _split(learner.params)
        with jax.named_scope("model_fit"):
            (loss, (terms, latents, valid)), grads = jax.value_and_grad(model_loss, has_aux=True)(
                (encoder, model), policy, learner.target_q, k_model, batch, hp)
            grads, _ = optax.clip_by_global_norm(hp.max_grad_norm).update(grads, optax.EmptyState())
            encoder, encoder_opt = optimizer_step(_ADAM, grads[0], learner.encoder_opt, encoder,
                                                  learning_rate=hp.learning_rate * hp.encoder_lr_scale)
            model, model_opt = optimizer_step(_ADAM, grads[1], learner.model_opt, model,
                                              learning_rate=hp.learning_rate)
        params = _join(encoder, model, policy)
        with jax.named_scope("policy_update"):
            (pi_loss, q0), pi_grads = jax.value_and_grad(policy_loss, has_aux=True)(
                policy, params, latents, valid, learner.q_scale, k_policy, hp)
            pi_grads, _ = optax.clip_by_global_norm(hp.max_grad_norm).update(pi_grads, optax.EmptyState())
            policy, policy_opt = optimizer_step(_POLICY_ADAM, pi_grads, learner.policy_opt, policy,
                                                learning_rate=hp.learning_rate)
            q_scale = returns_lib.return_scale_update(learner.q_scale, q0, 1.0 - hp.target_tau)
        params = _join(encoder, model, policy)
        target_q = optax.incremental_update(params["params"][_Q], learner.target_q, hp.target_tau)
        learner = Learner(params, target_q, encoder_opt, model_opt, policy_opt, q_scale)
        out = dict(model_loss=loss, consistency_loss=terms[0], reward_loss=terms[1], value_loss=terms[2],
                   policy_loss=pi_loss, q_scale=jnp.maximum(q_scale.high - q_scale.low, 1.0))
        return learner, out

    # ----- acting and the loops ---------------------------------------------------------

    def act_and_step(key, state: State, explore_randomly: bool):
        k_act, k_env, k_learn = jax.random.split(key, 3)
        if explore_randomly:
            keys = jax.random.split(k_act, cfg.num_envs)
            action = jax.vmap(envs.random_action, in_axes=(0, None))(keys, spec)
            pstate, planned = state.planner, jnp.zeros((cfg.num_envs,), jnp.float32)
        else:
            with jax.named_scope("plan"):
                action, pstate, planned = act(k_act, state.learner.params, state.obs, state.planner, state.hparams,
                                              explore=True)
        with jax.named_scope("env"):
            transition, obs, env_state = envs.batch_step(env, env_params, k_env, state.env_state, state.obs, action)
        done = transition.terminated | transition.truncated
        # A finished episode's successor plan starts afresh.
        fresh = fresh_planner(cfg.num_envs)
        pstate = jax.tree.map(lambda f, p: jnp.where(done.reshape((-1,) + (1,) * (p.ndim - 1)), f, p), fresh, pstate)
        record = Step(state.obs, action, transition.reward, transition.next_obs, transition.terminated,
                      transition.truncated)
        state = state._replace(env_state=env_state, obs=obs, planner=pstate, env_steps=state.env_steps + cfg.num_envs,
                               buffer=buffers.add(state.buffer, jax.tree.map(lambda a: a[None], record)))
        losses = {name: nan for name in _LOSS_FIELDS}
        if not explore_randomly:
            def one_update(learner, k):
                return update(learner, k, state.buffer, state.hparams)

            learner, outs = jax.lax.scan(one_update, state.learner,
                                         jax.random.split(k_learn, cfg.policy_updates_per_step))
            state = state._replace(learner=learner)
            losses = {k: v.mean() for k, v in outs.items()}
        return state, transition, (losses, planned.mean())

    def greedy_policy(state: State, n: int):
        fresh = fresh_planner(n)

        def greedy(k, obs, pstate, is_first):
            pstate = reset_where(is_first, fresh, pstate)
            action, pstate, _ = act(k, state.learner.params, obs, pstate, state.hparams, explore=False)
            return action, pstate

        return greedy, fresh

    def greedy_return(key, state: State):
        n = cfg.num_eval_episodes
        return evaluate(env, env_params, key, *greedy_policy(state, n), n, spec.max_steps)

    def iteration(state: State, explore_randomly: bool) -> Tuple[State, Metrics]:
        state, done_sum, done_count, (losses, planned) = scan_env_steps(
            lambda key, s: act_and_step(key, s, explore_randomly), state, cfg.steps_per_iteration)
        key, k_eval = jax.random.split(state.key)
        state = state._replace(key=key)
        if explore_randomly:
            eval_return, planned = nan, nan
        else:
            with jax.named_scope("eval"):
                eval_return = greedy_return(k_eval, state)
            planned = planned.mean()
        metrics = Metrics(
            iteration=state.iteration, env_steps=state.env_steps,
            episode_return=jnp.where(done_count > 0, done_sum / jnp.maximum(done_count, 1), jnp.nan),
            episodes=done_count, eval_return=eval_return, planned_return=planned,
            **{k: jnp.nanmean(v) if not explore_randomly else nan for k, v in losses.items()},
        )
        return state._replace(iteration=state.iteration + 1), metrics

    def step(state: State) -> Tuple[State, Metrics]:
        return iteration(state, explore_randomly=False)

    def init(key: PRNGKey, hp: HParams) -> State:
        hp = as_float32(hp)
        k_env, k_model, k_run = jax.random.split(key, 3)
        obs, env_state = envs.batch_reset(env, env_params, k_env, cfg.num_envs)
        params = net.init(k_model)
        encoder, model, policy = _split(params)
        learner = Learner(params, params["params"][_Q], _ADAM.init(encoder), _ADAM.init(model),
                          _POLICY_ADAM.init(policy), returns_lib.return_scale_init())
        b = cfg.num_envs
        example = Step(obs, jnp.zeros((b, a_dim), jnp.float32), jnp.zeros((b,), jnp.float32), obs,
                       jnp.zeros((b,), jnp.bool_), jnp.zeros((b,), jnp.bool_))
        state = State(
            key=k_run, hparams=hp, env_state=env_state, obs=obs, episode_return=jnp.zeros((b,), jnp.float32),
            planner=fresh_planner(b), buffer=buffers.init(capacity, example), learner=learner,
            iteration=jnp.zeros((), jnp.int32), env_steps=jnp.zeros((), jnp.int32), warmup=None,
        )
        state, warmup = jax.lax.scan(lambda s, _: iteration(s, explore_randomly=True), state, None,
                                     length=cfg.warmup_iterations)
        return state._replace(warmup=warmup)

    def run(key: PRNGKey, hp: HParams) -> Tuple[State, Metrics]:
        return run_after_warmup(init, step, cfg.num_iterations - cfg.warmup_iterations, key, hp)

    return Train(cfg, init, step, run, net, spec, act, planner, greedy_policy)
