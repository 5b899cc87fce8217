"""Recurrent state-space model (RSSM) world model, as pure functions over `RSSMState`.

The model of Hafner et al. (PlaNet 2019; DreamerV2 2021; DreamerV3 2023): a GRU
deterministic path `deter` and categorical stochastic latents `stoch` (S latents of K
classes each, one-hot samples with straight-through gradients and a 1% uniform mix).

    prior      p(z_t | h_t),        h_t = GRU(h_{t-1}, [z_{t-1}, a_{t-1}])
    posterior  q(z_t | h_t, e_t),   e_t = encoder(o_t)
    heads      decoder(o_t | s_t), reward(r_{t+1} | s'_{t+1}), continue(c_{t+1} | s'_{t+1})

where s_t = (h_t, z_t) and s'_{t+1} = img_step(s_t, a_t) is the one-step prior after the
action. The reward and continue heads read the *prior* successor state, which is the
state imagination produces, so the heads see the same kind of input when training and
when imagining, and the true successor of an episode's last step is never needed.

Vector observations use MLPs on symlog inputs and symlog targets (DreamerV3); image-like
observations [H, W, C] (MinAtar 10 x 10 x C) use small CNNs and a squared error in [0, 1].

Shapes follow the legend in `jaxmbrl.types`, with D = deter size, S = number of
latents, K = classes per latent, F = D + S * K the feature size, T the sequence length.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxmbrl.types import Array, Params, PRNGKey

ENCODERS = ("auto", "mlp", "cnn")


def symlog(x: Array) -> Array:
    """sign(x) log(1 + |x|): compresses large magnitudes, identity near zero (DreamerV3)."""
    return jnp.sign(x) * jnp.log1p(jnp.abs(x))


def symexp(x: Array) -> Array:
    """The inverse of `symlog`."""
    return jnp.sign(x) * jnp.expm1(jnp.abs(x))


class RSSMState(NamedTuple):
    """Latent state, any leading batch shape `...`.

    Attributes:
      deter: [..., D] float32 GRU state.
      stoch: [..., S, K] float32 one-hot samples (straight-through: the gradient flows
        to the class probabilities).
    """

    deter: Array
    stoch: Array


class Observed(NamedTuple):
    """What `observe` returns, leaves [B, T, ...].

    Attributes:
      posterior: RSSMState [B, T] of the filtered states s_t.
      post_logits: [B, T, S, K] q(z_t | h_t, e_t).
      prior_logits: [B, T, S, K] p(z_t | h_t).
    """

    posterior: RSSMState
    post_logits: Array
    prior_logits: Array


@dataclasses.dataclass(frozen=True)
class RSSMConfig:
    """Static RSSM settings (changing one recompiles).

    `action_dim` is A for continuous actions and the number of actions for discrete ones
    (actions enter the GRU one-hot). `encoder="auto"` picks the CNN for 3-d observations.
    """

    obs_shape: Tuple[int, ...]
    action_dim: int
    discrete_actions: bool
    deter_size: int = 256
    stoch_size: int = 16
    classes: int = 16
    hidden_size: int = 256
    mlp_layers: int = 2
    encoder: str = "auto"
    cnn_depth: int = 16
    unimix: float = 0.01

    @property
    def feature_size(self) -> int:
        return self.deter_size + self.stoch_size * self.classes

    @property
    def uses_cnn(self) -> bool:
        if self.encoder == "auto":
            return len(self.obs_shape) == 3
        return self.encoder == "cnn"

    def validate(self) -> None:
        for name in ("action_dim", "deter_size", "stoch_size", "classes", "hidden_size", "mlp_layers", "cnn_depth"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"RSSMConfig.{name} must be an integer >= 1, got {value!r}.")
        if self.encoder not in ENCODERS:
            raise ValueError(f"RSSMConfig.encoder={self.encoder!r} is unknown; choose one of {ENCODERS}.")
        if self.encoder == "cnn" and len(self.obs_shape) != 3:
            raise ValueError(
                f"RSSMConfig.encoder='cnn' needs image-like observations [H, W, C], got obs_shape "
                f"{self.obs_shape}; use encoder='mlp' (or 'auto')."
            )
        if not 0.0 <= self.unimix < 1.0:
            raise ValueError(f"RSSMConfig.unimix must be in [0, 1), got {self.unimix!r}.")


class _Dense(nn.Module):
    """Dense -> LayerNorm -> SiLU, the block DreamerV3 uses everywhere."""

    width: int

    @nn.compact
    def __call__(self, x):
        x = nn.Dense(self.width, use_bias=False, param_dtype=jnp.float32)(x)
        return nn.silu(nn.LayerNorm(param_dtype=jnp.float32)(x))


class _MLP(nn.Module):
    layers: int
    width: int
    out_size: int
    zero_out: bool = False  # zero-initialised output layer: heads start predicting 0

    @nn.compact
    def __call__(self, x):
        for _ in range(self.layers):
            x = _Dense(self.width)(x)
        init = nn.initializers.zeros if self.zero_out else nn.linear.default_kernel_init
        return nn.Dense(self.out_size, kernel_init=init, param_dtype=jnp.float32)(x)


class _ConvEncoder(nn.Module):
    """[..., H, W, C] -> [..., E]: two stride-2 3x3 convolutions (10x10 -> 5x5 -> 3x3)."""

    depth: int

    @nn.compact
    def __call__(self, x):
        batch = x.shape[:-3]
        x = x.reshape((-1,) + x.shape[-3:])
        for mult in (1, 2):
            x = nn.Conv(self.depth * mult, (3, 3), strides=(2, 2), padding="SAME", use_bias=False,
                        param_dtype=jnp.float32)(x)
            x = nn.silu(nn.LayerNorm(param_dtype=jnp.float32)(x))
        return x.reshape(batch + (-1,))


class _ConvDecoder(nn.Module):
    """[..., F] -> [..., H, W, C] through a transposed stride-2 convolution."""

    obs_shape: Tuple[int, int, int]
    depth: int

    @nn.compact
    def __call__(self, feat):
        height, width, channels = self.obs_shape
        h0, w0 = math.ceil(height / 2), math.ceil(width / 2)
        batch = feat.shape[:-1]
        x = nn.Dense(h0 * w0 * self.depth * 2, param_dtype=jnp.float32)(feat.reshape((-1, feat.shape[-1])))
        x = nn.silu(nn.LayerNorm(param_dtype=jnp.float32)(x.reshape((-1, h0, w0, self.depth * 2))))
        x = nn.ConvTranspose(self.depth, (3, 3), strides=(2, 2), padding="SAME", param_dtype=jnp.float32)(x)
        x = nn.silu(nn.LayerNorm(param_dtype=jnp.float32)(x))
        x = nn.Conv(channels, (3, 3), padding="SAME", param_dtype=jnp.float32)(x)
        return x[:, :height, :width, :].reshape(batch + self.obs_shape)


class WorldModelNet(nn.Module):
    """All RSSM parameters in one flax module; each method is one piece of the model."""

    config: RSSMConfig

    def setup(self):
        cfg = self.config
        logits = cfg.stoch_size * cfg.classes
        self.img_in = _Dense(cfg.hidden_size)
        self.gru = nn.GRUCell(features=cfg.deter_size, param_dtype=jnp.float32)
        self.prior_head = _MLP(1, cfg.hidden_size, logits)
        self.post_head = _MLP(1, cfg.hidden_size, logits)
        if cfg.uses_cnn:
            self.encoder = _ConvEncoder(cfg.cnn_depth)
            self.decoder = _ConvDecoder(tuple(cfg.obs_shape), cfg.cnn_depth)
        else:
            self.encoder = _MLP(cfg.mlp_layers - 1, cfg.hidden_size, cfg.hidden_size)
            self.decoder = _MLP(cfg.mlp_layers, cfg.hidden_size, int(math.prod(cfg.obs_shape)))
        self.reward_head = _MLP(cfg.mlp_layers, cfg.hidden_size, 1, zero_out=True)
        self.cont_head = _MLP(cfg.mlp_layers, cfg.hidden_size, 1)

    def _logits(self, head, x):
        cfg = self.config
        return head(x).reshape(x.shape[:-1] + (cfg.stoch_size, cfg.classes))

    def img(self, deter, stoch_flat, action_vec):
        """(h [..., D], z [..., S*K], a [..., A]) -> (h' [..., D], prior logits [..., S, K])."""
        x = self.img_in(jnp.concatenate([stoch_flat, action_vec], -1))
        deter, _ = self.gru(deter, x)
        return deter, self._logits(self.prior_head, deter)

    def post(self, deter, embed):
        """(h [..., D], e [..., E]) -> posterior logits [..., S, K]."""
        return self._logits(self.post_head, jnp.concatenate([deter, embed], -1))

    def encode(self, obs):
        cfg = self.config
        if cfg.uses_cnn:
            return self.encoder(obs.astype(jnp.float32))
        flat = obs.reshape(obs.shape[: obs.ndim - len(cfg.obs_shape)] + (-1,))
        return self.encoder(symlog(flat.astype(jnp.float32)))

    def decode(self, feat):
        cfg = self.config
        out = self.decoder(feat)
        return out if cfg.uses_cnn else out.reshape(feat.shape[:-1] + tuple(cfg.obs_shape))

    def reward(self, feat):
        return self.reward_head(feat)[..., 0]

    def cont(self, feat):
        return self.cont_head(feat)[..., 0]

    def __call__(self, obs, action_vec):
        """Touches every submodule once (used by `init`)."""
        cfg = self.config
        embed = self.encode(obs)
        deter = jnp.zeros(obs.shape[: obs.ndim - len(cfg.obs_shape)] + (cfg.deter_size,), jnp.float32)
        stoch = jnp.zeros(deter.shape[:-1] + (cfg.stoch_size * cfg.classes,), jnp.float32)
        deter, prior = self.img(deter, stoch, action_vec)
        post = self.post(deter, embed)
        feat = jnp.concatenate([deter, stoch], -1)
        return prior, post, self.decode(feat), self.reward(feat), self.cont(feat)


class RSSM(NamedTuple):
    """A world model: its static `config`, the flax `net`, and `init(key) -> params`."""

    config: RSSMConfig
    net: WorldModelNet
    init: Callable[[PRNGKey], Params]


def make_rssm(obs_shape, action_dim: int, *, discrete_actions: bool, deter_size: int = 256,
              stoch_size: int = 16, classes: int = 16, hidden_size: int = 256, mlp_layers: int = 2,
              encoder: str = "auto", cnn_depth: int = 16, unimix: float = 0.01) -> RSSM:
    """Builds an RSSM world model for observations `obs_shape` and `action_dim` actions.

    Raises:
      ValueError: naming the bad setting.
    """
    cfg = RSSMConfig(tuple(int(d) for d in obs_shape), int(action_dim), bool(discrete_actions), deter_size,
                     stoch_size, classes, hidden_size, mlp_layers, encoder, cnn_depth, float(unimix))
    cfg.validate()
    net = WorldModelNet(cfg)

    def init(key: PRNGKey) -> Params:
        obs = jnp.zeros((1,) + cfg.obs_shape, jnp.float32)
        return net.init(key, obs, jnp.zeros((1, cfg.action_dim), jnp.float32))

    return RSSM(cfg, net, init)


def initial_state(rssm: RSSM, batch_shape: Tuple[int, ...] = ()) -> RSSMState:
    """The all-zero state every episode starts from: deter [..., D], stoch [..., S, K]."""
    cfg = rssm.config
    return RSSMState(jnp.zeros(batch_shape + (cfg.deter_size,), jnp.float32),
                     jnp.zeros(batch_shape + (cfg.stoch_size, cfg.classes), jnp.float32))


def features(state: RSSMState) -> Array:
    """[..., F] = concat(deter, flattened stoch): what the heads, actor and critic read."""
    stoch = state.stoch.reshape(state.stoch.shape[:-2] + (-1,))
    return jnp.concatenate([state.deter, stoch], -1)


def action_vector(rssm: RSSM, action: Array) -> Array:
    """[..., A] float32: one-hot for discrete actions ([...] int32), as-is for continuous."""
    cfg = rssm.config
    if cfg.discrete_actions:
        return jax.nn.one_hot(action, cfg.action_dim, dtype=jnp.float32)
    return action.astype(jnp.float32)


def mixed_logits(logits: Array, unimix: float) -> Array:
    """Log-probabilities of `(1 - unimix) * softmax(logits) + unimix / K` (DreamerV3's mix,
    which keeps every class probability above unimix / K so KLs stay finite)."""
    probs = jax.nn.softmax(logits, -1)
    probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return jnp.log(probs)


def sample_stoch(key: PRNGKey, logits: Array, unimix: float = 0.01) -> Array:
    """One-hot samples [..., S, K] of the mixed categorical, straight-through gradients."""
    logp = mixed_logits(logits, unimix)
    probs = jnp.exp(logp)
    index = jax.random.categorical(key, logp, axis=-1)
    onehot = jax.nn.one_hot(index, logits.shape[-1], dtype=jnp.float32)
    return onehot + probs - jax.lax.stop_gradient(probs)


def img_step(rssm: RSSM, params: Params, key: PRNGKey, state: RSSMState, action: Array
             ) -> Tuple[RSSMState, Array]:
    """Prior transition s_t, a_t -> s_{t+1} ~ p: `(RSSMState [...], prior_logits [..., S, K])`.

    `action` is [..., A] float32 or [...] int32 (discrete), in env units.
    """
    cfg = rssm.config
    stoch_flat = state.stoch.reshape(state.stoch.shape[:-2] + (-1,))
    deter, logits = rssm.net.apply(params, state.deter, stoch_flat, action_vector(rssm, action), method="img")
    return RSSMState(deter, sample_stoch(key, logits, cfg.unimix)), logits


def obs_step(rssm: RSSM, params: Params, key: PRNGKey, prior: RSSMState, embed: Array
             ) -> Tuple[RSSMState, Array]:
    """Posterior for the prior's `deter` and an embedding [..., E]: `(RSSMState, post_logits)`."""
    logits = rssm.net.apply(params, prior.deter, embed, method="post")
    return RSSMState(prior.deter, sample_stoch(key, logits, rssm.config.unimix)), logits


def encode(rssm: RSSM, params: Params, obs: Array) -> Array:
    """[..., *obs_shape] -> embeddings [..., E]."""
    return rssm.net.apply(params, obs, method="encode")


def decode(rssm: RSSM, params: Params, feat: Array) -> Array:
    """[..., F] -> reconstructions [..., *obs_shape] (symlog units for vector observations)."""
    return rssm.net.apply(params, feat, method="decode")


def reward(rssm: RSSM, params: Params, feat: Array) -> Array:
    """[..., F] -> predicted reward [...] in env units (the head predicts its symlog)."""
    return symexp(rssm.net.apply(params, feat, method="reward"))


def continue_logit(rssm: RSSM, params: Params, feat: Array) -> Array:
    """[..., F] -> logit [...] of "the episode goes on" (not terminated)."""
    return rssm.net.apply(params, feat, method="cont")


def _reset(rssm: RSSM, state: RSSMState, action: Array, is_first: Array) -> Tuple[RSSMState, Array]:
    """Zeroes state and previous action where `is_first` [...] (a new episode)."""
    zero = initial_state(rssm, is_first.shape)
    keep = lambda new, old: jnp.where(is_first.reshape(is_first.shape + (1,) * (new.ndim - is_first.ndim)), new, old)
    state = jax.tree.map(keep, zero, state)
    return state, keep(jnp.zeros_like(action), action)


def filter_step(rssm: RSSM, params: Params, key: PRNGKey, state: RSSMState, prev_action: Array,
                obs: Array, is_first: Array) -> Tuple[RSSMState, Array, Array]:
    """One online filtering step: reset on `is_first`, prior from (s_{t-1}, a_{t-1}), then
    the posterior given o_t. Batched over any leading shape `...` of `is_first`.

    Returns:
      `(posterior RSSMState [...], post_logits, prior_logits)` ([..., S, K] each).
    """
    k_prior, k_post = jax.random.split(key)
    state, prev_action = _reset(rssm, state, prev_action, is_first)
    prior, prior_logits = img_step(rssm, params, k_prior, state, prev_action)
    post, post_logits = obs_step(rssm, params, k_post, prior, encode(rssm, params, obs))
    return post, post_logits, prior_logits


def observe(rssm: RSSM, params: Params, key: PRNGKey, obs: Array, actions: Array, is_first: Array,
            start: Optional[RSSMState] = None, start_action: Optional[Array] = None) -> Observed:
    """Filters sequences: a `lax.scan` over time of `filter_step`.

    Args:
      obs: [B, T, *obs_shape]. actions: [B, T, A] float32 or [B, T] int32, a_t taken at
        o_t (so step t consumes a_{t-1}). is_first: [B, T] bool, o_t starts an episode.
      start, start_action: the state and action before step 0 (default: zeros, i.e. a
        fresh episode).

    Returns:
      `Observed` with leaves [B, T, ...].
    """
    batch = is_first.shape[0]
    if start is None:
        start = initial_state(rssm, (batch,))
    if start_action is None:
        start_action = jnp.zeros_like(actions[:, 0])
    # Encode every frame at once; only the recurrence is sequential.
    embed = encode(rssm, params, obs)
    prev_actions = jnp.concatenate([start_action[:, None], actions[:, :-1]], 1)
    time_major = lambda x: jnp.swapaxes(x, 0, 1)

    def body(state, inputs):
        embed_t, prev_action, first, k = inputs
        k_prior, k_post = jax.random.split(k)
        state, prev_action = _reset(rssm, state, prev_action, first)
        prior, prior_logits = img_step(rssm, params, k_prior, state, prev_action)
        post, post_logits = obs_step(rssm, params, k_post, prior, embed_t)
        return post, (post, post_logits, prior_logits)

    keys = jax.random.split(key, is_first.shape[1])
    inputs = (time_major(embed), time_major(prev_actions), time_major(is_first), keys)
    _, outs = jax.lax.scan(body, start, inputs)
    post, post_logits, prior_logits = jax.tree.map(time_major, outs)
    return Observed(post, post_logits, prior_logits)


def imagine(rssm: RSSM, params: Params, key: PRNGKey, policy: Callable[[PRNGKey, Array], Array],
            start: RSSMState, horizon: int) -> Tuple[RSSMState, Array]:
    """Rolls the prior forward under `policy`: a `lax.scan` over `horizon` steps.

    Args:
      policy: `(key, features [B, F]) -> actions [B, A] | [B]`.
      start: RSSMState [B, ...].

    Returns:
      `(states RSSMState [B, horizon + 1, ...] with the start first, actions [B, horizon, ...])`.
    """

    def body(state, k):
        k_act, k_step = jax.random.split(k)
        action = policy(k_act, features(state))
        next_state, _ = img_step(rssm, params, k_step, state, action)
        return next_state, (next_state, action)

    _, (states, actions) = jax.lax.scan(body, start, jax.random.split(key, horizon))
    states = jax.tree.map(lambda s0, s: jnp.concatenate([s0[None], s], 0), start, states)
    batch_major = lambda x: jnp.swapaxes(x, 0, 1)
    return jax.tree.map(batch_major, states), batch_major(actions)


def categorical_kl(lhs_logits: Array, rhs_logits: Array, unimix: float = 0.01) -> Array:
    """KL(lhs || rhs) of the mixed categoricals, summed over the S latents: [..., S, K] -> [...]."""
    lhs = mixed_logits(lhs_logits, unimix)
    rhs = mixed_logits(rhs_logits, unimix)
    return (jnp.exp(lhs) * (lhs - rhs)).sum((-2, -1))


class KLTerms(NamedTuple):
    """Balanced KL terms, each [...]: `loss = dyn_scale * dyn + rep_scale * rep`; `raw` is
    the unclipped KL(q || p)."""

    loss: Array
    dyn: Array
    rep: Array
    raw: Array


def kl_balanced(post_logits: Array, prior_logits: Array, free_bits: Any = 1.0, dyn_scale: Any = 0.5,
                rep_scale: Any = 0.1, unimix: float = 0.01) -> KLTerms:
    """KL balancing with free bits (DreamerV3, eq. 5): the dynamics term trains the prior
    towards a fixed posterior, the representation term the posterior towards a fixed
    prior; each is clipped below at `free_bits` nats, so a KL already that small gives
    no gradient and the representation is not squeezed into the prior."""
    sg = jax.lax.stop_gradient
    raw = categorical_kl(post_logits, prior_logits, unimix)
    dyn = jnp.maximum(categorical_kl(sg(post_logits), prior_logits, unimix), free_bits)
    rep = jnp.maximum(categorical_kl(post_logits, sg(prior_logits), unimix), free_bits)
    return KLTerms(dyn_scale * dyn + rep_scale * rep, dyn, rep, raw)


def latent_model_fn(rssm: RSSM):
    """The RSSM as a planner `model_fn(key, params, state: RSSMState, action) ->
    (next_state, reward, terminated)` over unbatched latent states (PlaNet-style latent
    planning): one prior step, the reward head, and the continue head below 1/2 as the
    termination. `params` are the world-model parameters."""

    def model_fn(key, params, state, action):
        next_state, _ = img_step(rssm, params, key, state, action)
        feat = features(next_state)
        terminated = continue_logit(rssm, params, feat) < 0.0
        return next_state, reward(rssm, params, feat), terminated

    return model_fn


class WorldModelInfo(NamedTuple):
    """World-model loss terms, each a scalar mean over [B, T]."""

    loss: Array
    reconstruction: Array
    reward: Array
    cont: Array
    kl: Array  # unclipped KL(q || p), nats summed over latents
    dyn: Array
    rep: Array


def world_model_loss(rssm: RSSM, params: Params, key: PRNGKey, obs: Array, actions: Array, rewards: Array,
                     terminated: Array, is_first: Array, free_bits: Any = 1.0, dyn_scale: Any = 0.5,
                     rep_scale: Any = 0.1, balance_continue: bool = False
                     ) -> Tuple[Array, Tuple[WorldModelInfo, RSSMState]]:
    """The Dreamer world-model loss on a batch of sequences.

    Args:
      obs: [B, T, *obs_shape] o_t. actions: [B, T, A] | [B, T] a_t taken at o_t.
      rewards: [B, T] r_{t+1} received for a_t. terminated: [B, T] bool, a_t ended the
        episode in a terminal state. is_first: [B, T] bool.

    Returns:
      `(loss, (WorldModelInfo, posterior RSSMState [B, T]))`: reconstruction + reward +
      continue prediction losses plus the balanced KL; the posterior seeds imagination.
    """
    cfg = rssm.config
    k_obs, k_next = jax.random.split(key)
    seq = observe(rssm, params, k_obs, obs, actions, is_first)
    feat = features(seq.posterior)
    recon = decode(rssm, params, feat)
    target = obs.astype(jnp.float32) if cfg.uses_cnn else symlog(obs.astype(jnp.float32))
    obs_axes = tuple(range(2, recon.ndim))
    reconstruction = jnp.square(recon - target).sum(obs_axes)
    # One prior step after each action gives the state the reward and continue heads read.
    successor, _ = img_step(rssm, params, k_next, seq.posterior, actions)
    next_feat = features(successor)
    reward_loss = jnp.square(rssm.net.apply(params, next_feat, method="reward")
                             - symlog(rewards))
    cont_logit = continue_logit(rssm, params, next_feat)
    ended = terminated.astype(jnp.float32)
    cont_loss = optax.sigmoid_binary_cross_entropy(cont_logit, 1.0 - ended)
    if balance_continue:
        # Per-element weights with mean 1 over the batch, so the loss keeps its scale.
        num = ended.size
        pos = ended.sum()
        weight = jnp.where(terminated, 0.5 * num / jnp.maximum(pos, 1.0), 0.5 * num / jnp.maximum(num - pos, 1.0))
        weight = jnp.where(pos > 0, weight, 1.0)
        cont_loss = cont_loss * jax.lax.stop_gradient(weight)
    kl = kl_balanced(seq.post_logits, seq.prior_logits, free_bits, dyn_scale, rep_scale, cfg.unimix)
    total = reconstruction + reward_loss + cont_loss + kl.loss
    info = WorldModelInfo(total.mean(), reconstruction.mean(), reward_loss.mean(), cont_loss.mean(),
                          kl.raw.mean(), kl.dyn.mean(), kl.rep.mean())
    return total.mean(), (info, seq.posterior)

