"""TD-MPC2's networks (Hansen, Su and Wang, ICLR 2024) in flax.linen: an encoder to a
SimNorm latent, latent dynamics, a reward head, an ensemble of Q heads and a policy prior.

    encode:   obs -> z                         SimNorm latent [..., L]
    dynamics: (z, a) -> z'                     SimNorm latent
    reward:   (z, a) -> reward head            [..., num_bins] two-hot logits (symlog bins)
    q:        (z, a) -> Q heads                [num_q, ..., num_bins]
    policy:   z -> (mean, log_std)             of a tanh-Gaussian over the normalised action

SimNorm splits the latent into groups of `simnorm_dim` entries and takes a softmax within
each, so every group lies on a simplex: a bounded, sparse-leaning latent that the
dynamics cannot blow up over a rollout. Hidden layers are Dense -> LayerNorm -> Mish
(TD-MPC2's NormedLinear). Actions enter the networks normalised to [-1, 1]; the policy's
tanh output is in the same units (`normalise_action` / `env_action` convert).
Reward and Q heads start at zero (they predict 0 until trained); values and rewards share
`models.two_hot`'s symlog bins with MuZero. TD-MPC2's 1% dropout in the Q heads is left
out (it needs a key in every forward pass).
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmbrl.models._muzero import from_logits
from jaxmbrl.models._networks import MLP
from jaxmbrl.models._rssm import symlog
from jaxmbrl.types import Array, Params, PRNGKey

LOG_STD_MIN, LOG_STD_MAX = -10.0, 2.0  # TD-MPC2's bounds of the policy's log std


def simnorm(x: Array, group: int) -> Array:
    """[..., L] -> [..., L]: a softmax within each consecutive group of `group` entries."""
    shape = x.shape
    return jax.nn.softmax(x.reshape(shape[:-1] + (shape[-1] // group, group)), -1).reshape(shape)


@dataclasses.dataclass(frozen=True)
class TDMPC2NetConfig:
    """Static shapes.

    Attributes:
      obs_shape: one (vector) observation's shape. action_dim: A (continuous).
      latent_size: L, a multiple of `simnorm_dim`.
      hidden_sizes: widths of the encoder, dynamics and reward MLPs.
      head_hidden_sizes: widths of each Q head and of the policy.
      num_q: Q heads in the ensemble. num_bins: bins of the reward and Q heads (>= 2).
      simnorm_dim: SimNorm's group size (TD-MPC2: 8).
    """

    obs_shape: Tuple[int, ...]
    action_dim: int
    latent_size: int = 64
    hidden_sizes: Tuple[int, ...] = (256, 256)
    head_hidden_sizes: Tuple[int, ...] = (256, 256)
    num_q: int = 5
    num_bins: int = 101
    simnorm_dim: int = 8

    def validate(self) -> None:
        if self.latent_size % self.simnorm_dim:
            raise ValueError(f"latent_size={self.latent_size} must be a multiple of simnorm_dim={self.simnorm_dim}.")
        if self.num_bins < 2:
            raise ValueError(f"num_bins must be at least 2, got {self.num_bins}.")
        if self.num_q < 2:
            raise ValueError(f"num_q must be at least 2 (targets take the min of two heads), got {self.num_q}.")


def _mlp(sizes, out, zero_out=False):
    init = nn.initializers.zeros if zero_out else nn.linear.default_kernel_init
    return MLP(tuple(sizes), out, activation=jax.nn.mish, layer_norm=True, output_kernel_init=init)


class _QHead(nn.Module):
    sizes: Tuple[int, ...]
    num_bins: int

    @nn.compact
    def __call__(self, x):
        return _mlp(self.sizes, self.num_bins, zero_out=True)(x)


class TDMPC2Net(nn.Module):
    """The five networks; `__call__` touches all of them (for `init`)."""

    config: TDMPC2NetConfig

    def setup(self):
        cfg = self.config
        self.encoder = _mlp(cfg.hidden_sizes, cfg.latent_size)
        self.dynamics_mlp = _mlp(cfg.hidden_sizes, cfg.latent_size)
        self.reward_mlp = _mlp(cfg.hidden_sizes, cfg.num_bins, zero_out=True)
        self.q_heads = nn.vmap(_QHead, variable_axes={"params": 0}, split_rngs={"params": True}, in_axes=None,
                               out_axes=0, axis_size=cfg.num_q)(cfg.head_hidden_sizes, cfg.num_bins)
        self.policy_mlp = _mlp(cfg.head_hidden_sizes, 2 * cfg.action_dim)

    def encode(self, obs):
        cfg = self.config
        batch = obs.shape[:obs.ndim - len(cfg.obs_shape)]
        return simnorm(self.encoder(symlog(obs.reshape(batch + (-1,)).astype(jnp.float32))), cfg.simnorm_dim)

    def dynamics(self, z, action):
        return simnorm(self.dynamics_mlp(jnp.concatenate([z, action], -1)), self.config.simnorm_dim)

    def reward(self, z, action):
        return self.reward_mlp(jnp.concatenate([z, action], -1))

    def q(self, z, action):
        return self.q_heads(jnp.concatenate([z, action], -1))

    def policy(self, z):
        out = self.policy_mlp(z)
        mean, raw = jnp.split(out, 2, -1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (jnp.tanh(raw) + 1.0)
        return mean, log_std

    def __call__(self, obs, action):
        z = self.encode(obs)
        return self.dynamics(z, action), self.reward(z, action), self.q(z, action), self.policy(z)


class TDMPC2Model(NamedTuple):
    """TD-MPC2's networks as pure functions of their parameters (one params pytree).

    Attributes:
      config: the `TDMPC2NetConfig`.
      init: `init(key) -> params`.
      encode: `(params, obs [..., *obs_shape]) -> z [..., L]`.
      dynamics: `(params, z, action [..., A] in [-1, 1]) -> z'`.
      reward: `(params, z, action) -> [..., num_bins]` logits.
      q: `(params, z, action) -> [num_q, ..., num_bins]` logits.
      policy: `(params, z) -> (mean, log_std)` [..., A] each, before the tanh.
    """

    config: TDMPC2NetConfig
    init: Any
    encode: Any
    dynamics: Any
    reward: Any
    q: Any
    policy: Any

    def value(self, logits: Array) -> Array:
        """Reward or Q logits [..., num_bins] -> the value they predict [...]."""
        return from_logits(logits, self.config.num_bins)


def make_tdmpc2_model(obs_shape, action_dim: int, *, latent_size: int = 64, hidden_sizes=(256, 256),
                      head_hidden_sizes=(256, 256), num_q: int = 5, num_bins: int = 101,
                      simnorm_dim: int = 8) -> TDMPC2Model:
    """Builds TD-MPC2's networks (see module doc)."""
    cfg = TDMPC2NetConfig(tuple(obs_shape), int(action_dim), int(latent_size), tuple(hidden_sizes),
                          tuple(head_hidden_sizes), int(num_q), int(num_bins), int(simnorm_dim))
    cfg.validate()
    net = TDMPC2Net(cfg)

    def init(key: PRNGKey) -> Params:
        return net.init(key, jnp.zeros(cfg.obs_shape, jnp.float32), jnp.zeros((cfg.action_dim,), jnp.float32))

    def method(fn):
        return lambda params, *args: net.apply(params, *args, method=fn)

    return TDMPC2Model(cfg, init, method(TDMPC2Net.encode), method(TDMPC2Net.dynamics), method(TDMPC2Net.reward),
                       method(TDMPC2Net.q), method(TDMPC2Net.policy))


def consistency_loss(predicted: Array, target: Array, weights: Array, valid: Array) -> Array:
    """TD-MPC2's latent consistency loss of one window.

    Args:
      predicted: [H, L] latents the dynamics rolled out from the encoded first observation.
      target: [H, L] encodings of the observed successors (stop-gradient them first).
      weights: [H] temporal weights rho^t. valid: [H] 1 where step t lies in the episode.

    Returns:
      [] sum_t weights_t * valid_t * mean_l (predicted - target)^2, over H.
    """
    per_step = jnp.mean(jnp.square(predicted - target), -1)
    return jnp.sum(weights * valid * per_step) / predicted.shape[0]
