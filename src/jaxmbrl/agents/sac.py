"""Soft actor-critic (Haarnoja et al. 2018) as pure functions.

`make_sac` closes over the static settings (shapes, widths, action bounds) and returns
`SAC(init, act, update, ...)`; the learner's whole state is the `SACState` pytree and its
float hyperparameters are a `SACHParams` passed to `update`, so they sweep under `vmap`.

- Twin Q networks (the minimum of the two targets curbs over-estimation) and target
  copies moved by Polyak averaging (`target_tau`) after every update.
- A tanh-squashed Gaussian policy. Networks see the squashed action in [-1, 1]; `act`
  and the replay buffer use the environment's raw actions in [low, high].
- Automatic entropy tuning towards `target_entropy` (default -|A|); an
  `alpha_learning_rate` of 0 fixes the temperature at `init_alpha` instead.
- The TD target stops bootstrapping only at `terminated`: a time-limit `truncated`
  transition bootstraps like any other.
- Networks are `models.MLP`s (ReLU) and every optimiser is `models.adam`, its learning
  rate written in from `SACHParams` at each update. `compute_dtype="bfloat16"` runs
  their products (forward and both gradients) in bfloat16 with float32 accumulation;
  parameters, optimiser state and everything else stay float32.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxmbrl.models._ensemble import COMPUTE_DTYPES
from jaxmbrl.models._networks import MLP
from jaxmbrl.models._optim import adam, optimizer_step, set_hyperparams
from jaxmbrl.types import Array, Params, PRNGKey, Transition

__all__ = [
    "SAC",
    "SACConfig",
    "SACHParams",
    "SACState",
    "UpdateInfo",
    "make_sac",
    "polyak",
    "tanh_gaussian_log_prob",
    "tanh_gaussian_sample",
    "tanh_log_det_jacobian",
    "td_target",
]

# Haarnoja et al.'s reference implementation clips the policy's log standard deviation.
LOG_STD_MIN = -20.0
LOG_STD_MAX = 2.0
_LOG_2PI = math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)


class Actor(nn.Module):
    """Flat observation [..., O] -> (mean [..., A], log_std [..., A]) of the pre-tanh Gaussian."""

    action_dim: int
    hidden_sizes: Sequence[int] = (256, 256)
    dtype: Any = jnp.float32  # of the products

    def setup(self):
        self.net = MLP(self.hidden_sizes, 2 * self.action_dim, activation=nn.relu, dtype=self.dtype)
        # The MLP's layers sit directly in this module's parameters (`Dense_0`, ...).
        nn.share_scope(self, self.net)

    def __call__(self, obs: Array) -> Tuple[Array, Array]:
        mean, log_std = jnp.split(self.net(obs.astype(jnp.float32)), 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)


class Critic(nn.Module):
    """One Q network: (flat obs [..., O], squashed action [..., A]) -> Q [...]."""

    hidden_sizes: Sequence[int] = (256, 256)
    dtype: Any = jnp.float32  # of the products

    def setup(self):
        self.net = MLP(self.hidden_sizes, 1, activation=nn.relu, dtype=self.dtype)
        nn.share_scope(self, self.net)

    def __call__(self, obs: Array, action: Array) -> Array:
        x = jnp.concatenate([obs.astype(jnp.float32), action.astype(jnp.float32)], -1)
        return self.net(x)[..., 0]


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """Static SAC settings (changing one recompiles)."""

    obs_shape: Tuple[int, ...]
    action_dim: int
    low: Tuple[float, ...]
    high: Tuple[float, ...]
    hidden_sizes: Tuple[int, ...] = (256, 256)
    target_entropy: float = 0.0  # set by make_sac (default -action_dim)
    compute_dtype: str = "float32"  # of the networks' products: "float32" or "bfloat16"

    @property
    def obs_dim(self) -> int:
        return int(math.prod(self.obs_shape))


class SACHParams(NamedTuple):
    """Float SAC hyperparameters (traced; each may be a batched array under vmap)."""

    actor_learning_rate: Any = 3e-4
    critic_learning_rate: Any = 3e-4
    alpha_learning_rate: Any = 3e-4
    discount: Any = 0.99
    target_tau: Any = 0.005  # Polyak step of the target critics
    init_alpha: Any = 1.0  # read by `init` only


class SACState(NamedTuple):
    """Everything SAC learns. Critic leaves are stacked over the twin axis [2, ...]."""

    actor_params: Params
    critic_params: Params  # [2, ...]
    target_critic_params: Params  # [2, ...]
    actor_opt_state: Any
    critic_opt_state: Any
    log_alpha: Array  # [] float32
    alpha_opt_state: Any
    num_updates: Array  # [] int32


class UpdateInfo(NamedTuple):
    """Scalars of one SAC update, for logging."""

    critic_loss: Array  # [] mean over twins and batch
    actor_loss: Array  # []
    alpha_loss: Array  # []
    alpha: Array  # [] the temperature used in this update
    entropy: Array  # [] minus the mean log-probability of the policy's actions
    q_mean: Array  # [] mean Q(s, a) of the batch (first twin)


class SAC(NamedTuple):
    """A SAC learner as pure functions.

    Attributes:
      config: the static `SACConfig`.
      actor, critic: the flax modules.
      init: `init(key, hp=SACHParams()) -> SACState`.
      act: `act(key, state, obs [*obs_shape], deterministic: bool) -> action [A]` in
        [low, high]; `deterministic=True` gives the tanh of the mean (evaluation).
      q_values: `q_values(critic_params, obs [..., *obs_shape], env_action [..., A]) -> [2, ...]`.
      update: `update(state, batch: Transition [B], hp) -> (SACState, UpdateInfo)`:
        one critic, actor and temperature step, then the target move.
    """

    config: SACConfig
    actor: Actor
    critic: Critic
    init: Callable[..., SACState]
    act: Callable[..., Array]
    q_values: Callable[[Params, Array, Array], Array]
    update: Callable[[SACState, Transition, SACHParams], Tuple[SACState, UpdateInfo]]


def tanh_log_det_jacobian(u: Array) -> Array:
    """log(1 - tanh(u)^2) elementwise, in the stable form 2 (log 2 - u - softplus(-2u))."""
    return 2.0 * (_LOG_2 - u - jax.nn.softplus(-2.0 * u))


def tanh_gaussian_log_prob(u: Array, mean: Array, log_std: Array) -> Array:
    """log density [...] of `a = tanh(u)` where u ~ N(mean, exp(log_std)^2), summed over [..., A].

    Takes the pre-tanh sample `u`: inverting tanh near +-1 loses all precision.
    """
    z = (u - mean) * jnp.exp(-log_std)
    gaussian = -0.5 * (z**2 + _LOG_2PI) - log_std
    return (gaussian - tanh_log_det_jacobian(u)).sum(-1)


def tanh_gaussian_sample(key: PRNGKey, mean: Array, log_std: Array) -> Tuple[Array, Array]:
    """A reparameterised squashed sample: `(action [..., A] in (-1, 1), log_prob [...])`."""
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.tanh(u), tanh_gaussian_log_prob(u, mean, log_std)


def td_target(
    reward: Array,
    terminated: Array,
    discount: Array,
    next_q: Array,
    next_log_prob: Array,
    alpha: Array,
) -> Array:
    """Soft Q-learning targets [B]: `r + discount (1 - terminated) (min_i Q_i' - alpha log pi)`.

    Args:
      reward: [B]; terminated: [B] bool (truncation is deliberately absent);
      next_q: [2, B] target-critic values at (s', a' ~ pi(s')); next_log_prob: [B].
    """
    soft_value = next_q.min(0) - alpha * next_log_prob
    not_done = 1.0 - terminated.astype(jnp.float32)
    return reward.astype(jnp.float32) + discount * not_done * soft_value


def polyak(params: Params, target_params: Params, tau: Array) -> Params:
    """`tau * params + (1 - tau) * target_params`, leaf by leaf (`optax.incremental_update`)."""
    return optax.incremental_update(params, target_params, tau)


def make_sac(
    obs_shape: int | Sequence[int],
    action_dim: int,
    low: float | Sequence[float] = -1.0,
    high: float | Sequence[float] = 1.0,
    hidden_sizes: Sequence[int] = (256, 256),
    *,
    target_entropy: Optional[float] = None,
    compute_dtype: str = "float32",
) -> SAC:
    """Builds a SAC learner for a Box action space.

    Args:
      obs_shape: O or the shape of one observation (flattened for the networks).
      action_dim: A.
      low, high: action bounds (scalars or [A]); `act` rescales tanh's (-1, 1) to them.
      hidden_sizes: ReLU widths of the actor and of each critic.
      target_entropy: the temperature's target; default -A.
      compute_dtype: "float32", or "bfloat16" for the networks' products in bfloat16
        (`models.COMPUTE_DTYPES`).
    """
    obs_shape = (int(obs_shape),) if isinstance(obs_shape, int) else tuple(int(d) for d in obs_shape)
    action_dim = int(action_dim)
    if action_dim < 1:
        raise ValueError(f"action_dim must be positive, got {action_dim}.")
    if compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"Unknown compute_dtype {compute_dtype!r}; choose one of {sorted(COMPUTE_DTYPES)}.")
    if not hidden_sizes or any(int(h) < 1 for h in hidden_sizes):
        raise ValueError(f"hidden_sizes must be positive widths, got {hidden_sizes!r}.")
    low_t = tuple(float(x) for x in jnp.broadcast_to(jnp.asarray(low, jnp.float32), (action_dim,)))
    high_t = tuple(float(x) for x in jnp.broadcast_to(jnp.asarray(high, jnp.float32), (action_dim,)))
    if any(not h > lo for lo, h in zip(low_t, high_t)):
        raise ValueError(f"Every action bound needs high > low, got low={low_t}, high={high_t}.")
    cfg = SACConfig(
        obs_shape=obs_shape, action_dim=action_dim, low=low_t, high=high_t,
        hidden_sizes=tuple(int(h) for h in hidden_sizes),
        target_entropy=float(-action_dim if target_entropy is None else target_entropy),
        compute_dtype=str(compute_dtype),
    )
    dtype = COMPUTE_DTYPES[cfg.compute_dtype]
    actor = Actor(action_dim, cfg.hidden_sizes, dtype)
    critic = Critic(cfg.hidden_sizes, dtype)
    low_a, high_a = jnp.asarray(low_t, jnp.float32), jnp.asarray(high_t, jnp.float32)
    # One transformation for all three learners: each state holds its own learning rate.
    opt = adam()

    def flat(obs):
        batch = obs.shape[: obs.ndim - len(cfg.obs_shape)]
        return obs.reshape(batch + (cfg.obs_dim,)).astype(jnp.float32)

    def to_env(squashed):
        return low_a + 0.5 * (squashed + 1.0) * (high_a - low_a)

    def from_env(action):
        return 2.0 * (jnp.asarray(action, jnp.float32) - low_a) / (high_a - low_a) - 1.0

    def twin_q(critic_params, obs, squashed):
        if cfg.compute_dtype == "float32":
            return jax.vmap(critic.apply, in_axes=(0, None, None))(critic_params, obs, squashed)
        # Narrow products get their inputs stacked over the twins like the parameters:
        # under vmap a shared input turns the gradient products into a form XLA's CPU
        # runtime has no bfloat16 kernel for.
        twins = lambda a: jnp.broadcast_to(a, (2,) + a.shape)  # noqa: E731
        return jax.vmap(critic.apply)(critic_params, twins(obs), twins(squashed))

    def q_values(critic_params, obs, env_action):
        return twin_q(critic_params, flat(obs), from_env(env_action))

    def init(key: PRNGKey, hp: SACHParams = SACHParams()) -> SACState:
        k_actor, k_critic = jax.random.split(key)
        obs = jnp.zeros((cfg.obs_dim,), jnp.float32)
        act0 = jnp.zeros((action_dim,), jnp.float32)
        actor_params = actor.init(k_actor, obs)
        critic_params = jax.vmap(critic.init, in_axes=(0, None, None))(jax.random.split(k_critic), obs, act0)
        log_alpha = jnp.log(jnp.asarray(hp.init_alpha, jnp.float32))
        return SACState(
            actor_params=actor_params,
            critic_params=critic_params,
            target_critic_params=critic_params,
            actor_opt_state=set_hyperparams(opt.init(actor_params), learning_rate=hp.actor_learning_rate),
            critic_opt_state=set_hyperparams(opt.init(critic_params), learning_rate=hp.critic_learning_rate),
            log_alpha=log_alpha,
            alpha_opt_state=set_hyperparams(opt.init(log_alpha), learning_rate=hp.alpha_learning_rate),
            num_updates=jnp.zeros((), jnp.int32),
        )

    def act(key: PRNGKey, state: SACState, obs: Array, deterministic: bool = False) -> Array:
        mean, log_std = actor.apply(state.actor_params, flat(obs))
        if deterministic:
            return to_env(jnp.tanh(mean))
        squashed, _ = tanh_gaussian_sample(key, mean, log_std)
        return to_env(squashed)

    def critic_loss(critic_params, target_params, actor_params, alpha, batch, discount, key):
        obs, next_obs = flat(batch.obs), flat(batch.next_obs)
        next_mean, next_log_std = actor.apply(actor_params, next_obs)
        next_action, next_logp = tanh_gaussian_sample(key, next_mean, next_log_std)
        next_q = twin_q(target_params, next_obs, next_action)
        target = jax.lax.stop_gradient(
            td_target(batch.reward, batch.terminated, discount, next_q, next_logp, alpha)
        )
        q = twin_q(critic_params, obs, from_env(batch.action))
        return 0.5 * ((q - target) ** 2).mean(-1).sum(), q[0].mean()

    def actor_loss(actor_params, critic_params, alpha, obs, key):
        mean, log_std = actor.apply(actor_params, obs)
        action, logp = tanh_gaussian_sample(key, mean, log_std)
        q = twin_q(critic_params, obs, action).min(0)
        return (alpha * logp - q).mean(), logp

    def alpha_loss(log_alpha, logp):
        return -(log_alpha * jax.lax.stop_gradient(logp + cfg.target_entropy)).mean()

    def update(state: SACState, batch: Transition, hp: SACHParams, key: Optional[PRNGKey] = None):
        """One SAC update. `key` defaults to one folded from the update count."""
        if key is None:
            key = jax.random.fold_in(jax.random.PRNGKey(0), state.num_updates)
        k_critic, k_actor = jax.random.split(key)
        alpha = jnp.exp(state.log_alpha)
        (c_loss, q_mean), c_grads = jax.value_and_grad(critic_loss, has_aux=True)(
            state.critic_params, state.target_critic_params, state.actor_params, alpha, batch,
            hp.discount, k_critic,
        )
        critic_params, critic_opt = optimizer_step(opt, c_grads, state.critic_opt_state, state.critic_params,
                                                   learning_rate=hp.critic_learning_rate)
        (a_loss, logp), a_grads = jax.value_and_grad(actor_loss, has_aux=True)(
            state.actor_params, critic_params, alpha, flat(batch.obs), k_actor
        )
        actor_params, actor_opt = optimizer_step(opt, a_grads, state.actor_opt_state, state.actor_params,
                                                 learning_rate=hp.actor_learning_rate)
        t_loss, t_grad = jax.value_and_grad(alpha_loss)(state.log_alpha, logp)
        log_alpha, alpha_opt = optimizer_step(opt, t_grad, state.alpha_opt_state, state.log_alpha,
                                              learning_rate=hp.alpha_learning_rate)
        target = optax.incremental_update(critic_params, state.target_critic_params, hp.target_tau)
        new_state = SACState(actor_params, critic_params, target, actor_opt, critic_opt,
                             log_alpha, alpha_opt, state.num_updates + 1)
        return new_state, UpdateInfo(c_loss, a_loss, t_loss, alpha, -logp.mean(), q_mean)

    return SAC(cfg, actor, critic, init, act, q_values, update)
