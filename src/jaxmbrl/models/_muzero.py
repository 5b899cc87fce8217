"""MuZero's learned model (Schrittwieser et al. 2020): representation, dynamics with reward,
and prediction (policy and value) networks over a latent state, in flax.linen.

    h: obs -> s_0                  (representation)
    g: (s_k, a_k) -> (s_{k+1}, r_{k+1})   (dynamics, with the reward of the step)
    f: s_k -> (policy logits [A], value)  (prediction)

Latent states are min-max normalised to [0, 1] per state, as in MuZero, so that the
dynamics' inputs keep one scale however far they are unrolled. Values and rewards are
either scalars (regressed in symlog space) or categorical over `num_bins` bins spaced
evenly in symlog space and trained on two-hot targets (DreamerV3, TD-MPC2): see
`two_hot` / `from_logits`. Vector observations go through an MLP on symlog inputs,
image-like ones [H, W, C] through the same small CNN as Dreamer's encoder.
"""
from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxmbrl.models._networks import MLP
from jaxmbrl.models._rssm import ENCODERS, _ConvEncoder, symexp, symlog
from jaxmbrl.types import Array, Params, PRNGKey

# Symlog-space support of categorical values and rewards: symexp(10) ~ 22,000.
SUPPORT_LIMIT = 10.0


@dataclasses.dataclass(frozen=True)
class MuZeroNetConfig:
    """Static shapes of the three networks.

    Attributes:
      obs_shape: one observation's shape. num_actions: A (discrete).
      latent_size: width of the latent state s.
      hidden_sizes: widths of the representation and dynamics MLPs.
      head_hidden_sizes: widths of the prediction MLP and the reward head.
      num_bins: bins of the categorical value and reward heads; 0 for scalar heads.
      encoder: "mlp", "cnn" or "auto" (CNN for [H, W, C] observations).
      cnn_depth: channels of the CNN's first layer.
    """

    obs_shape: Tuple[int, ...]
    num_actions: int
    latent_size: int = 64
    hidden_sizes: Tuple[int, ...] = (128, 128)
    head_hidden_sizes: Tuple[int, ...] = (128,)
    num_bins: int = 101
    encoder: str = "auto"
    cnn_depth: int = 16

    @property
    def uses_cnn(self) -> bool:
        return self.encoder == "cnn" or (self.encoder == "auto" and len(self.obs_shape) == 3)

    @property
    def head_size(self) -> int:
        """Outputs of a value or reward head: its bins, or 1 for a scalar."""
        return self.num_bins or 1

    def validate(self) -> None:
        if self.encoder not in ENCODERS:
            raise ValueError(f"encoder={self.encoder!r} is unknown; choose one of {ENCODERS}.")
        if self.encoder == "cnn" and len(self.obs_shape) != 3:
            raise ValueError(f"encoder='cnn' needs observations [H, W, C], got shape {self.obs_shape}; "
                             f"use encoder='mlp' or 'auto'.")
        if self.num_bins == 1 or self.num_bins < 0:
            raise ValueError(f"num_bins must be 0 (scalar heads) or at least 2, got {self.num_bins}.")


def bins(num_bins: int) -> Array:
    """[num_bins] float32 bin centres in symlog space, evenly over [-10, 10]."""
    return jnp.linspace(-SUPPORT_LIMIT, SUPPORT_LIMIT, num_bins, dtype=jnp.float32)


def two_hot(x: Array, num_bins: int) -> Array:
    """[...] values -> [..., num_bins] two-hot weights of symlog(x) on `bins(num_bins)`.

    The two bins around symlog(x) share the weight by linear interpolation, so the
    weights' mean bin is exactly symlog(x) (clipped to the support).
    """
    centres = bins(num_bins)
    y = jnp.clip(symlog(jnp.asarray(x, jnp.float32)), -SUPPORT_LIMIT, SUPPORT_LIMIT)
    width = centres[1] - centres[0]
    below = jnp.clip(jnp.floor((y + SUPPORT_LIMIT) / width).astype(jnp.int32), 0, num_bins - 2)
    frac = (y - centres[below]) / width
    lower = jax.nn.one_hot(below, num_bins, dtype=jnp.float32)
    upper = jax.nn.one_hot(below + 1, num_bins, dtype=jnp.float32)
    return lower * (1.0 - frac)[..., None] + upper * frac[..., None]


def from_logits(head: Array, num_bins: int) -> Array:
    """A value or reward head's output [..., head_size] -> the value [...] it predicts:
    symexp of the mean bin under softmax(head), or symexp(head) for a scalar head."""
    if num_bins == 0:
        return symexp(head[..., 0])
    return symexp(jnp.sum(jax.nn.softmax(head, -1) * bins(num_bins), -1))


def head_loss(head: Array, target: Array, num_bins: int) -> Array:
    """[...] loss of a value or reward head against value targets [...]: cross-entropy to
    the two-hot target, or squared error in symlog space for a scalar head."""
    if num_bins == 0:
        return jnp.square(head[..., 0] - symlog(target))
    return -jnp.sum(two_hot(target, num_bins) * jax.nn.log_softmax(head, -1), -1)


def _normalise(s: Array) -> Array:
    # MuZero's hidden-state scaling: each latent state spans [0, 1].
    low = s.min(-1, keepdims=True)
    high = s.max(-1, keepdims=True)
    return (s - low) / jnp.maximum(high - low, 1e-5)


class MuZeroNet(nn.Module):
    """The three networks; `__call__` touches all of them (for `init`)."""

    config: MuZeroNetConfig

    def setup(self):
        cfg = self.config
        self.encoder = _ConvEncoder(cfg.cnn_depth) if cfg.uses_cnn else None
        self.represent_mlp = MLP(cfg.hidden_sizes, cfg.latent_size)
        self.dynamics_mlp = MLP(cfg.hidden_sizes, cfg.latent_size)
        self.reward_head = MLP(cfg.head_hidden_sizes, cfg.head_size, output_kernel_init=nn.initializers.zeros)
        self.prediction = MLP(cfg.head_hidden_sizes, cfg.num_actions + cfg.head_size,
                              output_kernel_init=nn.initializers.zeros)

    def represent(self, obs: Array) -> Array:
        """[..., *obs_shape] -> latent [..., L]."""
        cfg = self.config
        batch = obs.shape[:obs.ndim - len(cfg.obs_shape)]
        x = obs.astype(jnp.float32)
        if self.encoder is not None:
            x = self.encoder(x)
        else:
            x = symlog(x.reshape(batch + (-1,)))
        return _normalise(self.represent_mlp(x))

    def dynamics(self, latent: Array, action: Array) -> Tuple[Array, Array]:
        """latent [..., L], action [...] int -> (next latent [..., L], reward head [..., head_size])."""
        x = jnp.concatenate([latent, jax.nn.one_hot(action, self.config.num_actions, dtype=jnp.float32)], -1)
        next_latent = _normalise(self.dynamics_mlp(x))
        return next_latent, self.reward_head(x)

    def predict(self, latent: Array) -> Tuple[Array, Array]:
        """latent [..., L] -> (policy logits [..., A], value head [..., head_size])."""
        out = self.prediction(latent)
        return out[..., :self.config.num_actions], out[..., self.config.num_actions:]

    def __call__(self, obs: Array, action: Array):
        latent = self.represent(obs)
        next_latent, reward = self.dynamics(latent, action)
        return self.predict(next_latent), reward


class MuZeroModel(NamedTuple):
    """MuZero's networks as pure functions of their parameters.

    Attributes:
      config: the `MuZeroNetConfig`.
      init: `init(key) -> params`.
      represent: `(params, obs [..., *obs_shape]) -> latent [..., L]`.
      dynamics: `(params, latent [..., L], action [...] int32) -> (next latent, reward head
        [..., head_size])`.
      predict: `(params, latent) -> (policy logits [..., A], value head [..., head_size])`.
    """

    config: MuZeroNetConfig
    init: Any
    represent: Any
    dynamics: Any
    predict: Any

    def value(self, head: Array) -> Array:
        """A value or reward head's output -> the value it predicts ([...])."""
        return from_logits(head, self.config.num_bins)


def make_muzero_model(obs_shape, num_actions: int, *, latent_size: int = 64, hidden_sizes=(128, 128),
                      head_hidden_sizes=(128,), num_bins: int = 101, encoder: str = "auto",
                      cnn_depth: int = 16) -> MuZeroModel:
    """Builds MuZero's representation, dynamics and prediction networks (see module doc)."""
    cfg = MuZeroNetConfig(tuple(obs_shape), int(num_actions), int(latent_size), tuple(hidden_sizes),
                          tuple(head_hidden_sizes), int(num_bins), encoder, int(cnn_depth))
    cfg.validate()
    net = MuZeroNet(cfg)

    def init(key: PRNGKey) -> Params:
        return net.init(key, jnp.zeros(cfg.obs_shape, jnp.float32), jnp.zeros((), jnp.int32))

    def represent(params, obs):
        return net.apply(params, obs, method=MuZeroNet.represent)

    def dynamics(params, latent, action):
        return net.apply(params, latent, action, method=MuZeroNet.dynamics)

    def predict(params, latent):
        return net.apply(params, latent, method=MuZeroNet.predict)

    return MuZeroModel(cfg, init, represent, dynamics, predict)
