"""DQN (Mnih et al. 2015) with a double-Q option (van Hasselt et al. 2016), as pure functions.

`make_dqn` closes over the static settings and returns `DQN(init, q_values, act, update)`;
the learner's whole state is the `DQNState` pytree. The TD target stops bootstrapping only
at `terminated`: a time-limit `truncated` transition bootstraps like any other.

The target network moves towards the online one every `target_update_period` updates by
`target_params <- target_tau * params + (1 - target_tau) * target_params`: `target_tau=1`
is DQN's periodic hard copy, `target_update_period=1` with a small `target_tau` is Polyak
averaging. `target_tau` and the learning rate may be traced, so they sweep under `vmap`.
The Q network is a `models.MLP` (ReLU) and the optimiser `models.adam` (clipped).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxmbrl.models._networks import MLP
from jaxmbrl.models._optim import adam, optimizer_step, set_hyperparams
from jaxmbrl.types import Array, Params, PRNGKey, Transition

__all__ = [
    "DQN",
    "DQNConfig",
    "DQNState",
    "QNetwork",
    "UpdateInfo",
    "epsilon_greedy",
    "epsilon_schedule",
    "make_dqn",
    "random_argmax",
    "td_target",
]


class QNetwork(nn.Module):
    """MLP from a flat observation [..., O] to action values [..., num_actions] (ReLU)."""

    num_actions: int
    hidden_sizes: Sequence[int] = (64, 64)
    dtype: Any = jnp.float32

    def setup(self):
        self.net = MLP(self.hidden_sizes, self.num_actions, activation=nn.relu, dtype=self.dtype)
        # The MLP's layers sit directly in this module's parameters (`Dense_0`, ...).
        nn.share_scope(self, self.net)

    def __call__(self, x: Array) -> Array:
        return self.net(x)


@dataclasses.dataclass(frozen=True)
class DQNConfig:
    """Static DQN settings (changing one recompiles)."""

    obs_shape: Tuple[int, ...]
    num_actions: int
    hidden_sizes: Tuple[int, ...] = (64, 64)
    double_q: bool = True
    huber_delta: float = 1.0
    target_update_period: int = 1
    max_grad_norm: float = 10.0

    @property
    def obs_dim(self) -> int:
        return int(math.prod(self.obs_shape))


class DQNState(NamedTuple):
    """Online and target parameters, optimiser state and the update counter."""

    params: Params
    target_params: Params
    opt_state: Any
    num_updates: Array  # [] int32


class UpdateInfo(NamedTuple):
    """Scalars of one DQN update, for logging."""

    loss: Array  # [] mean Huber loss of the batch
    q_mean: Array  # [] mean Q(s, a) of the batch
    td_abs: Array  # [] mean |target - Q(s, a)|


class DQN(NamedTuple):
    """A DQN learner as pure functions.

    Attributes:
      config: the static `DQNConfig`.
      network: the flax `QNetwork`.
      optimizer: the `models.adam` transformation (gradient clipping, learning rate
        injectable).
      init: `init(key, learning_rate=None) -> DQNState`.
      q_values: `q_values(params, obs [..., *obs_shape]) -> [..., A]`.
      act: `act(key, params, obs [*obs_shape], epsilon) -> [] int32`, epsilon-greedy.
      update: `update(state, batch: Transition [B], discount, target_tau=1.0,
        learning_rate=None) -> (DQNState, UpdateInfo)`, one gradient step plus the target
        schedule; a given `learning_rate` replaces the one in the state.
    """

    config: DQNConfig
    network: QNetwork
    optimizer: optax.GradientTransformation
    init: Callable[..., DQNState]
    q_values: Callable[[Params, Array], Array]
    act: Callable[[PRNGKey, Params, Array, Array], Array]
    update: Callable[..., Tuple[DQNState, UpdateInfo]]


def random_argmax(key: PRNGKey, values: Array) -> Array:
    """[] int32: an index of the maximum of `values` [A], ties broken uniformly at random.

    Zero-initialised Q-tables are all ties; a fixed tie-break (the lowest index) would
    send an untrained agent down the same corridor every episode.
    """
    logits = jnp.where(values >= values.max(), 0.0, -jnp.inf)
    return jax.random.categorical(key, logits).astype(jnp.int32)


def epsilon_greedy(key: PRNGKey, values: Array, epsilon: Array) -> Array:
    """[] int32 action: uniform with probability `epsilon`, else a random best action.

    Args:
      values: action values [A].
      epsilon: [] float, may be traced.
    """
    k_explore, k_random, k_greedy = jax.random.split(key, 3)
    random_action = jax.random.randint(k_random, (), 0, values.shape[-1], dtype=jnp.int32)
    greedy = random_argmax(k_greedy, values)
    return jnp.where(jax.random.uniform(k_explore) < epsilon, random_action, greedy)


def epsilon_schedule(start: Array, end: Array, decay_steps: int) -> optax.Schedule:
    """Linear decay from `start` to `end` over `decay_steps` steps (constant `end` if 0).

    `start` and `end` may be traced (hyperparameters under `vmap`); `decay_steps` is static.
    """
    if decay_steps <= 0:
        return lambda count: jnp.asarray(end, jnp.float32)
    schedule = optax.linear_schedule(start, end, decay_steps)
    return lambda count: jnp.asarray(schedule(count), jnp.float32)


def td_target(
    reward: Array,
    terminated: Array,
    discount: Array,
    next_q_target: Array,
    next_q_online: Optional[Array] = None,
) -> Array:
    """One-step Q-learning targets [B].

    `r + discount * (1 - terminated) * Q_target(s', a*)` with `a* = argmax Q_target(s')`,
    or `a* = argmax Q_online(s')` when `next_q_online` is given (double Q-learning).
    Time-limit truncation is deliberately absent: it is not a terminal state.

    Args:
      reward: [B]; terminated: [B] bool; discount: [] float;
      next_q_target, next_q_online: [B, A] values of the successor states.
    """
    chooser = next_q_target if next_q_online is None else next_q_online
    best = jnp.argmax(chooser, axis=-1)
    bootstrap = jnp.take_along_axis(next_q_target, best[..., None], axis=-1)[..., 0]
    not_done = 1.0 - terminated.astype(jnp.float32)
    return reward.astype(jnp.float32) + discount * not_done * bootstrap


def make_dqn(
    obs_shape: int | Sequence[int],
    num_actions: int,
    hidden_sizes: Sequence[int] = (64, 64),
    *,
    double_q: bool = True,
    huber_delta: float = 1.0,
    target_update_period: int = 1,
    max_grad_norm: float = 10.0,
    learning_rate: float = 1e-3,
) -> DQN:
    """Builds a DQN learner.

    Args:
      obs_shape: the shape of one observation (flattened for the network), or O.
      num_actions: A.
      hidden_sizes: widths of the ReLU hidden layers.
      double_q: choose the bootstrap action with the online network.
      huber_delta: where the Huber loss turns from quadratic to linear.
      target_update_period: updates between moves of the target network (>= 1).
      max_grad_norm: global gradient-norm clip.
      learning_rate: Adam's default step size (`init` may override it with a traced value).
    """
    obs_shape = (int(obs_shape),) if isinstance(obs_shape, int) else tuple(int(d) for d in obs_shape)
    cfg = DQNConfig(
        obs_shape=obs_shape,
        num_actions=int(num_actions),
        hidden_sizes=tuple(int(h) for h in hidden_sizes),
        double_q=bool(double_q),
        huber_delta=float(huber_delta),
        target_update_period=int(target_update_period),
        max_grad_norm=float(max_grad_norm),
    )
    if cfg.num_actions < 1:
        raise ValueError(f"num_actions must be positive, got {num_actions}.")
    if cfg.target_update_period < 1:
        raise ValueError(f"target_update_period must be >= 1, got {target_update_period}.")
    if any(h < 1 for h in cfg.hidden_sizes):
        raise ValueError(f"hidden_sizes must be positive widths, got {hidden_sizes!r}.")
    network = QNetwork(cfg.num_actions, cfg.hidden_sizes)
    optimizer = adam(learning_rate, max_grad_norm=cfg.max_grad_norm)

    def q_values(params: Params, obs: Array) -> Array:
        batch = obs.shape[: obs.ndim - len(cfg.obs_shape)]
        return network.apply(params, obs.reshape(batch + (cfg.obs_dim,)).astype(jnp.float32))

    def init(key: PRNGKey, learning_rate: Optional[Array] = None) -> DQNState:
        params = network.init(key, jnp.zeros((cfg.obs_dim,), jnp.float32))
        opt_state = set_hyperparams(optimizer.init(params), learning_rate=learning_rate)
        return DQNState(params, params, opt_state, jnp.zeros((), jnp.int32))

    def act(key: PRNGKey, params: Params, obs: Array, epsilon: Array) -> Array:
        return epsilon_greedy(key, q_values(params, obs), epsilon)

    def loss_fn(params, target_params, batch: Transition, discount):
        q = q_values(params, batch.obs)
        q_taken = jnp.take_along_axis(q, batch.action.astype(jnp.int32)[:, None], axis=-1)[:, 0]
        next_target = q_values(target_params, batch.next_obs)
        next_online = q_values(params, batch.next_obs) if cfg.double_q else None
        target = jax.lax.stop_gradient(
            td_target(batch.reward, batch.terminated, discount, next_target, next_online)
        )
        loss = optax.huber_loss(q_taken, target, delta=cfg.huber_delta).mean()
        return loss, UpdateInfo(loss, q_taken.mean(), jnp.abs(target - q_taken).mean())

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def update(state: DQNState, batch: Transition, discount: Array, target_tau: Array = 1.0,
               learning_rate: Optional[Array] = None):
        grads, info = grad_fn(state.params, state.target_params, batch, discount)
        params, opt_state = optimizer_step(optimizer, grads, state.opt_state, state.params,
                                           learning_rate=learning_rate)
        num_updates = state.num_updates + 1
        move = num_updates % cfg.target_update_period == 0
        tau = jnp.where(move, jnp.asarray(target_tau, jnp.float32), 0.0)
        target_params = optax.incremental_update(params, state.target_params, tau)
        return DQNState(params, target_params, opt_state, num_updates), info

    return DQN(cfg, network, optimizer, init, q_values, act, update)
