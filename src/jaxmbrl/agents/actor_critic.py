"""Actor-critic learned on imagined trajectories (Dreamer; Hafner et al. 2020, 2023).

The actor and critic read latent features [..., F]. One `update` takes a batch of
imagined trajectories and:

- computes lambda returns (`returns.lambda_returns`) bootstrapped from a slow critic (an
  exponential moving average of the critic, the target network of Dreamer);
- regresses the critic on them in symlog space, weighted by the imagined probability of
  still being in the episode;
- trains the actor with REINFORCE on advantages divided by the running return range
  max(1, P95 - P5) (DreamerV3's return normalisation) plus an entropy bonus. REINFORCE
  serves both action kinds, as in DreamerV3's final version, so no gradient has to
  flow through the world model.

Continuous actions: a Normal with tanh-bounded mean and std in [min_std, max_std] over
[-1, 1], clipped and rescaled to the env's [low, high]. Discrete: a categorical with a
1% uniform mix.

Both networks are `models.MLP`s with DreamerV3's LayerNorm blocks (the critic's output
starts at zero); both optimisers are `models.adam` with gradient clipping.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxmbrl.agents import returns as returns_lib
from jaxmbrl.models._networks import MLP
from jaxmbrl.models._optim import adam, optimizer_step
from jaxmbrl.models._rssm import symexp, symlog
from jaxmbrl.types import Array, Params, PRNGKey

__all__ = [
    "ActorCritic",
    "ActorCriticConfig",
    "ActorCriticHParams",
    "ActorCriticState",
    "UpdateInfo",
    "adam_init",
    "clipped_adam_step",
    "make_actor_critic",
]


# DreamerV3's Adam: epsilon 1e-5, gradients clipped by global norm. The learning rate
# and clip norm are written into the state at every step, so one transformation (and
# one state layout) serves every call; 100.0 is only the value `init` stores.
_ADAM = adam(eps=1e-5, max_grad_norm=100.0)


def adam_init(params: Params):
    """The optimiser state `clipped_adam_step` expects."""
    return _ADAM.init(params)


def clipped_adam_step(grads, opt_state, params, learning_rate, max_norm: float):
    """Adam on gradients clipped to global norm `max_norm` (both may be traced).

    Returns `(params, opt_state, grad_norm)`, the norm before clipping.
    """
    params, opt_state = optimizer_step(_ADAM, grads, opt_state, params, learning_rate=learning_rate,
                                       max_grad_norm=max_norm)
    return params, opt_state, optax.tree.norm(grads)


@dataclasses.dataclass(frozen=True)
class ActorCriticConfig:
    """Static settings. `action_dim` is A (continuous) or the number of actions."""

    feature_size: int
    action_dim: int
    discrete: bool
    low: Tuple[float, ...] = ()
    high: Tuple[float, ...] = ()
    hidden_sizes: Tuple[int, ...] = (256, 256)
    unimix: float = 0.01
    min_std: float = 0.1
    max_std: float = 1.0
    max_grad_norm: float = 100.0


class ActorCriticHParams(NamedTuple):
    """Traced floats (sweepable)."""

    actor_learning_rate: Any = 3e-4
    critic_learning_rate: Any = 3e-4
    discount: Any = 0.99
    lambda_: Any = 0.95
    entropy: Any = 3e-4
    target_tau: Any = 0.02  # Polyak step of the slow critic
    return_decay: Any = 0.99


class ActorCriticState(NamedTuple):
    """The learner's parameters, optimiser states and running return scale (one agent, unbatched)."""

    actor_params: Params
    critic_params: Params
    slow_critic_params: Params
    actor_opt: Any
    critic_opt: Any
    return_scale: returns_lib.ReturnScale


class UpdateInfo(NamedTuple):
    """Scalars of one update."""

    actor_loss: Array
    critic_loss: Array
    entropy: Array
    imagined_return: Array  # mean lambda return
    value: Array  # mean critic value
    return_scale: Array  # max(1, P95 - P5) after the update


class ActorCritic(NamedTuple):
    """`init(key) -> state`; `act(key, state, feat [..., F], deterministic) -> action`;
    `update(state, feats [B, H+1, F], actions [B, H, ...], rewards [B, H], conts [B, H],
    hp) -> (state, UpdateInfo)`; `log_prob/entropy(actor_params, feat, action)`."""

    config: ActorCriticConfig
    init: Callable
    act: Callable
    update: Callable
    log_prob: Callable
    entropy: Callable
    value: Callable


def make_actor_critic(feature_size: int, action_dim: int, *, discrete: bool, low=(), high=(),
                      hidden_sizes: Sequence[int] = (256, 256)) -> ActorCritic:
    """Builds the imagination actor-critic for features of size F and the given actions."""
    if not hidden_sizes or any(int(h) < 1 for h in hidden_sizes):
        raise ValueError(f"hidden_sizes must be positive widths, got {hidden_sizes!r}.")
    if discrete:
        low, high = (), ()  # unused
    else:
        low = tuple(float(x) for x in jnp.broadcast_to(jnp.asarray(low, jnp.float32), (action_dim,)))
        high = tuple(float(x) for x in jnp.broadcast_to(jnp.asarray(high, jnp.float32), (action_dim,)))
        if any(not h > lo for lo, h in zip(low, high)):
            raise ValueError(f"Every action bound needs high > low, got low={low}, high={high}.")
    cfg = ActorCriticConfig(int(feature_size), int(action_dim), bool(discrete), tuple(low), tuple(high),
                            tuple(int(h) for h in hidden_sizes))
    actor = MLP(cfg.hidden_sizes, cfg.action_dim if discrete else 2 * cfg.action_dim, layer_norm=True)
    # A zero output layer: the critic starts out predicting a return of zero.
    critic = MLP(cfg.hidden_sizes, 1, layer_norm=True, output_kernel_init=nn.initializers.zeros)
    if not discrete:
        low_a, high_a = jnp.asarray(cfg.low, jnp.float32), jnp.asarray(cfg.high, jnp.float32)

    def dist(actor_params, feat):
        out = actor.apply(actor_params, feat)
        if discrete:
            probs = (1 - cfg.unimix) * jax.nn.softmax(out, -1) + cfg.unimix / cfg.action_dim
            return jnp.log(probs), None
        mean, raw_std = jnp.split(out, 2, -1)
        std = (cfg.max_std - cfg.min_std) * jax.nn.sigmoid(raw_std + 2.0) + cfg.min_std
        return jnp.tanh(mean), std

    def log_prob(actor_params, feat, action):
        a, b = dist(actor_params, feat)
        if discrete:
            return jnp.take_along_axis(a, action[..., None].astype(jnp.int32), -1)[..., 0]
        unit = 2.0 * (action - low_a) / (high_a - low_a) - 1.0
        z = (unit - a) / b
        return (-0.5 * jnp.square(z) - jnp.log(b) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def entropy(actor_params, feat):
        a, b = dist(actor_params, feat)
        if discrete:
            return -(jnp.exp(a) * a).sum(-1)
        return (jnp.log(b) + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)

    def act(key, state: ActorCriticState, feat, deterministic=False):
        a, b = dist(state.actor_params, feat)
        if discrete:
            sample = jax.random.categorical(key, a, -1)
            return jnp.where(deterministic, jnp.argmax(a, -1), sample).astype(jnp.int32)
        noise = jax.random.normal(key, a.shape, jnp.float32)
        unit = jnp.clip(jnp.where(deterministic, a, a + b * noise), -1.0, 1.0)
        return low_a + 0.5 * (unit + 1.0) * (high_a - low_a)

    def value(critic_params, feat):
        """[..., F] -> value [...] in return units (the critic predicts its symlog)."""
        return symexp(critic.apply(critic_params, feat)[..., 0])

    def init(key: PRNGKey) -> ActorCriticState:
        k_actor, k_critic = jax.random.split(key)
        feat = jnp.zeros((cfg.feature_size,), jnp.float32)
        actor_params = actor.init(k_actor, feat)
        critic_params = critic.init(k_critic, feat)
        return ActorCriticState(actor_params, critic_params, critic_params, adam_init(actor_params),
                                adam_init(critic_params), returns_lib.return_scale_init())

    def update(state: ActorCriticState, feats, actions, rewards, conts, hp: ActorCriticHParams):
        sg = jax.lax.stop_gradient
        feats, rewards, conts = sg(feats), sg(rewards), sg(conts)
        discounts = hp.discount * conts  # [B, H]
        slow_values = value(state.slow_critic_params, feats)  # [B, H+1]
        rets = jax.vmap(returns_lib.lambda_returns, in_axes=(0, 0, 0, None))(
            rewards, discounts, slow_values, hp.lambda_)  # [B, H]
        # Weight of step t: the imagined probability of still being in the episode at t.
        weight = jnp.cumprod(jnp.concatenate([jnp.ones_like(discounts[:, :1]), discounts[:, :-1]], 1), 1)
        weight = sg(weight)
        return_scale = returns_lib.return_scale_update(state.return_scale, rets, hp.return_decay)
        scale = returns_lib.scale(return_scale)
        baseline = value(state.critic_params, feats[:, :-1])
        advantage = sg((rets - baseline) / scale)

        def actor_loss_fn(actor_params):
            logp = log_prob(actor_params, feats[:, :-1], actions)
            ent = entropy(actor_params, feats[:, :-1])
            loss = -(weight * (logp * advantage + hp.entropy * ent)).mean()
            return loss, ent.mean()

        def critic_loss_fn(critic_params):
            pred = critic.apply(critic_params, feats[:, :-1])[..., 0]
            return (weight * jnp.square(pred - symlog(rets))).mean()

        (actor_loss, ent), actor_grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(state.actor_params)
        critic_loss, critic_grads = jax.value_and_grad(critic_loss_fn)(state.critic_params)
        actor_params, actor_opt, _ = clipped_adam_step(actor_grads, state.actor_opt, state.actor_params,
                                                       hp.actor_learning_rate, cfg.max_grad_norm)
        critic_params, critic_opt, _ = clipped_adam_step(critic_grads, state.critic_opt, state.critic_params,
                                                         hp.critic_learning_rate, cfg.max_grad_norm)
        slow = optax.incremental_update(critic_params, state.slow_critic_params, hp.target_tau)
        new_state = ActorCriticState(actor_params, critic_params, slow, actor_opt, critic_opt, return_scale)
        info = UpdateInfo(actor_loss, critic_loss, ent, rets.mean(), baseline.mean(), scale)
        return new_state, info

    return ActorCritic(cfg, init, act, update, log_prob, entropy, value)
