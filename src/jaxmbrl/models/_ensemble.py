"""Probabilistic Gaussian ensemble (PETS; Chua et al. 2018) as pure functions.

Members share one architecture and are vmapped over stacked parameters. Each member
predicts a diagonal Gaussian over the normalised target `[obs delta (O), reward (1)?]`
and, optionally, a termination logit. The same code with `probabilistic=False` is the
deterministic MLP baseline (squared error, no variance head).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxmbrl.models._networks import MLP
from jaxmbrl.models._optim import adam, optimizer_step, set_hyperparams
from jaxmbrl.models._normaliser import (
    Normaliser,
    denormalise,
    fit_normaliser,
    identity_normaliser,
    normalise,
)
from jaxmbrl.types import Array, Params, PRNGKey, Transition

_LOG_2PI = math.log(2.0 * math.pi)

# PETS uses SiLU (swish); mbrl-lib's GaussianMLP defaults to ReLU.
ACTIVATIONS = {"silu": jax.nn.silu, "relu": jax.nn.relu, "tanh": jnp.tanh, "elu": jax.nn.elu}
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


@dataclasses.dataclass(frozen=True)
class EnsembleConfig:
    """Static ensemble configuration (changing it changes shapes: recompiles)."""

    obs_shape: Tuple[int, ...]
    action_dim: int
    num_members: int = 7
    num_elites: int = 5
    hidden_sizes: Tuple[int, ...] = (200, 200, 200, 200)
    discrete_actions: bool = False
    learn_reward: bool = False
    learn_termination: bool = False
    probabilistic: bool = True
    # Hidden-layer nonlinearity, a name in `ACTIVATIONS`.
    activation: str = "silu"
    # dtype of the matrix products: "bfloat16" halves their cost on CPUs with bf16 dot
    # instructions (and on accelerators); parameters, normalisers and outputs stay float32.
    compute_dtype: str = "float32"
    # Weight terminal transitions by negatives/positives in the termination loss.
    balance_termination: bool = True
    # Soft bounds on the log-variance start at these values and are learned
    # (PETS appendix A.1); their sum is penalised with `logvar_bound_coef`.
    init_max_logvar: float = 0.5
    init_min_logvar: float = -10.0
    logvar_bound_coef: float = 0.01

    @property
    def obs_dim(self) -> int:
        return int(math.prod(self.obs_shape))

    @property
    def input_dim(self) -> int:
        return self.obs_dim + self.action_dim

    @property
    def target_dim(self) -> int:
        """D: predicted Gaussian dims (obs delta, then reward if learned)."""
        return self.obs_dim + int(self.learn_reward)


class Ensemble(NamedTuple):
    """An ensemble of dynamics models as pure functions.

    Attributes:
      config: the static `EnsembleConfig`.
      init: `init(key) -> params`, parameters stacked over members [E, ...].
      apply: `apply(params, x) -> (mean [E,...,D], logvar [E,...,D], term_logit [E,...])`
        for normalised inputs `x` [E, ..., In] (member e reads `x[e]`), in normalised
        target units.
      optimizer: the `models.adam` transformation `fit` uses (learning rate and weight
        decay injectable).
    """

    config: EnsembleConfig
    init: Callable[[PRNGKey], Params]
    apply: Callable[[Params, Array], Tuple[Array, Array, Array]]
    optimizer: optax.GradientTransformation


class ModelState(NamedTuple):
    """Everything a fitted ensemble needs to predict: a pytree, safe to vmap/scan."""

    params: Params
    opt_state: Any
    input_norm: Normaliser  # [In]
    target_norm: Normaliser  # [D]
    elites: Array  # int32 [num_elites], best members first
    holdout_loss: Array  # float32 [E], validation MSE (normalised targets) at selection


class FitInfo(NamedTuple):
    """What one `fit` did: losses per epoch, held-out error per member, early stopping, split sizes."""

    train_loss: Array  # [epochs] mean minibatch loss (NaN after every member stopped)
    holdout_mse: Array  # [epochs, E] normalised-target MSE on the held-out split
    best_holdout_mse: Array  # [E] at the kept parameters
    epochs_trained: Array  # int32 [E] epochs each member kept training (early stopping)
    num_train: Array  # int32 transitions used for training
    num_holdout: Array  # int32 transitions held out


class Prediction(NamedTuple):
    """Gaussian predictions in environment units, with leading batch dims [...].

    `predict` gives one per member ([...] = [E]); `ensemble_step` one per row ([N]).
    """

    next_obs_mean: Array  # [..., *obs_shape]
    next_obs_logvar: Array  # [..., *obs_shape]
    reward_mean: Array  # [...] (zeros when the reward is not learned)
    reward_logvar: Array  # [...]
    termination_prob: Array  # [...] (zeros when termination is not learned)


def make_ensemble(
    obs_dim: int | Sequence[int],
    action_dim: int,
    num_members: int = 7,
    num_elites: int = 5,
    hidden_sizes: Sequence[int] = (200, 200, 200, 200),
    *,
    discrete_actions: bool = False,
    learn_reward: bool = False,
    learn_termination: bool = False,
    balance_termination: bool = True,
    probabilistic: bool = True,
    activation: str = "silu",
    compute_dtype: str = "float32",
    learning_rate: float = 1e-3,
    weight_decay: float = 5e-5,
) -> Ensemble:
    """Builds a Gaussian ensemble.

    Args:
      obs_dim: O, or the observation shape (observations are flattened).
      action_dim: A: the Box dimension, or the number of actions when
        `discrete_actions` (actions are then one-hot encoded).
      num_members, num_elites: E, and how many best members planning uses.
      hidden_sizes: widths of the SiLU hidden layers.
      learn_reward / learn_termination: add a reward Gaussian / termination logit.
      balance_termination: weight the rare terminal transitions by the ratio of
        non-terminal to terminal ones in the termination loss (probabilities then
        overstate termination near the boundary, but the head does not collapse to
        "never terminates").
      probabilistic: False gives deterministic members trained with squared error.
      activation: hidden nonlinearity, one of `ACTIVATIONS` ("silu", as in PETS;
        "relu" is mbrl-lib's default).
      compute_dtype: "float32", or "bfloat16" for matrix products in bfloat16 (float32
        accumulation, parameters and outputs): about twice the product throughput on
        CPUs with AVX512-BF16 and on accelerators, at about 3 significant digits.
      learning_rate, weight_decay: defaults for the Adam optimiser with L2 decay.
    """
    obs_shape = (int(obs_dim),) if isinstance(obs_dim, int) else tuple(int(d) for d in obs_dim)
    cfg = EnsembleConfig(
        obs_shape=obs_shape,
        action_dim=int(action_dim),
        num_members=int(num_members),
        num_elites=int(num_elites),
        hidden_sizes=tuple(int(h) for h in hidden_sizes),
        discrete_actions=bool(discrete_actions),
        learn_reward=bool(learn_reward),
        learn_termination=bool(learn_termination),
        balance_termination=bool(balance_termination),
        probabilistic=bool(probabilistic),
        activation=str(activation),
        compute_dtype=str(compute_dtype),
    )
    if cfg.activation not in ACTIVATIONS:
        raise ValueError(f"Unknown activation {cfg.activation!r}; choose one of {sorted(ACTIVATIONS)}.")
    if cfg.compute_dtype not in COMPUTE_DTYPES:
        raise ValueError(f"Unknown compute_dtype {cfg.compute_dtype!r}; choose one of {sorted(COMPUTE_DTYPES)}.")
    if not 1 <= cfg.num_elites <= cfg.num_members:
        raise ValueError(
            f"num_elites={cfg.num_elites} must be between 1 and num_members={cfg.num_members}."
        )
    if cfg.action_dim < 1 or cfg.obs_dim < 1:
        raise ValueError(f"obs_dim and action_dim must be positive, got {obs_shape}, {action_dim}.")
    d = cfg.target_dim
    out_size = d * (2 if cfg.probabilistic else 1) + int(cfg.learn_termination)
    net = MLP(cfg.hidden_sizes, out_size, activation=ACTIVATIONS[cfg.activation],
              dtype=COMPUTE_DTYPES[cfg.compute_dtype])

    def init(key: PRNGKey) -> Params:
        dummy = jnp.zeros((cfg.input_dim,), jnp.float32)
        net_params = jax.vmap(net.init, in_axes=(0, None))(jax.random.split(key, cfg.num_members), dummy)
        params = {"net": net_params}
        if cfg.probabilistic:
            shape = (cfg.num_members, d)
            params["max_logvar"] = jnp.full(shape, cfg.init_max_logvar, jnp.float32)
            params["min_logvar"] = jnp.full(shape, cfg.init_min_logvar, jnp.float32)
        return params

    def apply_member(member_params, max_logvar, min_logvar, x):
        out = net.apply(member_params, x).astype(jnp.float32)
        mean = out[..., :d]
        if cfg.probabilistic:
            raw = out[..., d : 2 * d]
            # Soft clamps keep the variance inside learned bounds with smooth gradients.
            logvar = max_logvar - jax.nn.softplus(max_logvar - raw)
            logvar = min_logvar + jax.nn.softplus(logvar - min_logvar)
        else:
            logvar = jnp.zeros_like(mean)
        term_logit = out[..., -1] if cfg.learn_termination else jnp.zeros(out.shape[:-1], out.dtype)
        return mean, logvar, term_logit

    def apply(params: Params, x: Array):
        # Works for any leading member count (all members, or a gathered subset).
        members = x.shape[0]
        if cfg.probabilistic:
            max_lv, min_lv = params["max_logvar"], params["min_logvar"]
        else:
            max_lv = min_lv = jnp.zeros((members, d), jnp.float32)
        # Bounds broadcast over the batch dims of x.
        extra = x.ndim - 2
        max_lv = max_lv.reshape((members,) + (1,) * extra + (d,))
        min_lv = min_lv.reshape((members,) + (1,) * extra + (d,))
        return jax.vmap(apply_member)(params["net"], max_lv, min_lv, x)

    # Coupled L2 decay (added to the gradient) as in PETS' weight penalties.
    optimizer = adam(learning_rate, weight_decay=weight_decay)
    return Ensemble(cfg, init, apply, optimizer)


def model_inputs(cfg: EnsembleConfig, obs: Array, action: Array) -> Array:
    """Raw `(obs [..., *obs_shape], action)` -> unnormalised model input [..., In]."""
    batch = obs.shape[: obs.ndim - len(cfg.obs_shape)]
    flat_obs = obs.reshape(batch + (cfg.obs_dim,)).astype(jnp.float32)
    if cfg.discrete_actions:
        act = jax.nn.one_hot(action, cfg.action_dim, dtype=jnp.float32)
    else:
        act = jnp.asarray(action, jnp.float32).reshape(batch + (cfg.action_dim,))
    return jnp.concatenate([flat_obs, act], axis=-1)


def model_targets(cfg: EnsembleConfig, transition: Transition) -> Array:
    """Unnormalised targets [..., D]: the observation delta, then the reward if learned."""
    obs = transition.obs
    batch = obs.shape[: obs.ndim - len(cfg.obs_shape)]
    delta = (transition.next_obs - obs).reshape(batch + (cfg.obs_dim,)).astype(jnp.float32)
    if cfg.learn_reward:
        delta = jnp.concatenate([delta, transition.reward.astype(jnp.float32)[..., None]], -1)
    return delta


def init_model(
    ens: Ensemble,
    key: PRNGKey,
    example: Optional[Transition] = None,
    *,
    learning_rate: Optional[Array] = None,
    weight_decay: Optional[Array] = None,
) -> ModelState:
    """Initial `ModelState`: fresh parameters, optimiser state, identity normalisers.

    Args:
      example: an unbatched `Transition`; used only to check shapes.
      learning_rate, weight_decay: override the ensemble's defaults (may be traced
        scalars, so that a sweep over them is one compiled program).
    """
    cfg = ens.config
    if example is not None:
        got = tuple(jnp.shape(example.obs))
        if got != cfg.obs_shape:
            raise ValueError(f"example obs shape {got} does not match the ensemble's {cfg.obs_shape}.")
    params = ens.init(key)
    opt_state = set_hyperparams(ens.optimizer.init(params), learning_rate=learning_rate,
                                weight_decay=weight_decay)
    return ModelState(
        params=params,
        opt_state=opt_state,
        input_norm=identity_normaliser(cfg.input_dim),
        target_norm=identity_normaliser(cfg.target_dim),
        elites=jnp.arange(cfg.num_elites, dtype=jnp.int32),
        holdout_loss=jnp.zeros((cfg.num_members,), jnp.float32),
    )


def member_losses(ens: Ensemble, params: Params, x: Array, y: Array, done: Array, weight: Array,
                  termination_pos_weight: Array = 1.0):
    """Per-member training loss.

    Args:
      x: normalised inputs [E, B, In]; y: normalised targets [E, B, D];
      done: termination labels [E, B]; weight: [E, B] (0 for padding).

    Returns:
      `(loss [E], mse [E])`: Gaussian NLL (or MSE when deterministic) plus the
      log-variance bound penalty and termination cross-entropy; and the plain MSE.
    """
    cfg = ens.config
    mean, logvar, term_logit = ens.apply(params, x)
    count = jnp.maximum(weight.sum(-1), 1.0)
    sq = (mean - y) ** 2
    mse = (sq.mean(-1) * weight).sum(-1) / count
    if cfg.probabilistic:
        nll = 0.5 * (sq * jnp.exp(-logvar) + logvar).mean(-1)
        loss = (nll * weight).sum(-1) / count
        loss = loss + cfg.logvar_bound_coef * (
            params["max_logvar"].sum(-1) - params["min_logvar"].sum(-1)
        )
    else:
        loss = mse
    if cfg.learn_termination:
        bce = optax.sigmoid_binary_cross_entropy(term_logit, done.astype(jnp.float32))
        bce = bce * jnp.where(done, termination_pos_weight, 1.0)
        loss = loss + (bce * weight).sum(-1) / count
    return loss, mse


def _select_members(mask: Array, new, old):
    """Per-member `where` over stacked pytrees (mask [E])."""

    def pick(a, b):
        return jnp.where(mask.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)

    return jax.tree.map(pick, new, old)


def member_sharding(devices: Optional[Sequence[Any]] = None) -> jax.sharding.NamedSharding:
    """A sharding that spreads an ensemble's member axis over `devices` (default: all).

    For `fit(..., member_sharding=...)`. On a CPU, start the process with
    `XLA_FLAGS=--xla_force_host_platform_device_count=N` (before JAX starts) to get N host
    devices: each runs its members' small products on its own thread, which one device's
    program does not do at batch 32. The member count need not divide by N.
    """
    devices = jax.devices() if devices is None else list(devices)
    mesh = jax.sharding.Mesh(np.asarray(devices, dtype=object), ("members",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("members"))


def _constrain_members(tree, sharding, num_members: int):
    """Places every leaf with a leading member axis [E, ...] on `sharding`."""
    if sharding is None:
        return tree

    def place(a):
        if a.ndim >= 1 and a.shape[0] == num_members:
            return jax.lax.with_sharding_constraint(a, sharding)
        return a

    return jax.tree.map(place, tree)


def fit(
    ens: Ensemble,
    mstate: ModelState,
    key: PRNGKey,
    buffer_state,
    *,
    epochs: int = 50,
    batch_size: int = 32,
    holdout_ratio: float = 0.2,
    max_holdout: int = 5000,
    patience: int = 5,
    improvement_threshold: float = 0.01,
    bootstrap: bool = True,
    member_sharding: Optional[jax.sharding.Sharding] = None,
) -> Tuple[ModelState, FitInfo]:
    """Fits the ensemble on the filled part of a replay buffer of `Transition`s.

    One jittable function: normalisers are refit on the training split, then a
    `lax.scan` over `epochs`, each a loop over minibatches (their number follows the
    buffer's dynamic fill level) and a held-out evaluation. Each member draws its own
    bootstrap minibatches. A member stops (its updates are masked) after `patience`
    epochs without a relative improvement of `improvement_threshold` in held-out MSE
    (0 disables stopping); every member keeps its best parameters, and the
    `num_elites` members with the lowest held-out MSE become the elites.

    Args:
      buffer_state: a `jaxmbrl.buffers.BufferState` holding `Transition`s [C, ...].
      epochs, batch_size, max_holdout, patience, bootstrap: static.
      holdout_ratio, improvement_threshold: floats (may be traced).
      member_sharding: None, or a sharding of the member axis over devices
        (`member_sharding()`): the parameters and optimiser state are constrained to it
        and XLA partitions the members' work across the devices. Results match one
        device's up to the order of floating-point sums (which Adam's normalised steps
        amplify where a gradient is near zero). Under `vmap` over seeds the members'
        work is still partitioned, but the outputs come back replicated. Static.
    """
    cfg = ens.config
    data: Transition = buffer_state.data
    capacity = data.reward.shape[0]
    num_members = cfg.num_members
    size = buffer_state.size.astype(jnp.int32)

    inputs = model_inputs(cfg, data.obs, data.action)
    targets = model_targets(cfg, data)
    dones = data.terminated

    key, perm_key = jax.random.split(key)
    positions = jnp.arange(capacity, dtype=jnp.int32)
    # Valid slots first, in random order: a permutation of the filled part.
    scores = jnp.where(positions < size, jax.random.uniform(perm_key, (capacity,)), 2.0)
    perm = jnp.argsort(scores).astype(jnp.int32)
    hold_cap = min(max_holdout, capacity)
    num_hold = jnp.minimum(jnp.floor(size * holdout_ratio).astype(jnp.int32), hold_cap)
    num_hold = jnp.where(size - num_hold < 1, 0, num_hold)
    num_train = jnp.maximum(size - num_hold, 1)
    train_idx = jnp.take(perm, (positions + num_hold) % capacity)  # first num_train valid
    in_train = jnp.zeros((capacity,), jnp.bool_).at[train_idx].set(positions < num_train)

    input_norm = fit_normaliser(inputs, in_train)
    target_norm = fit_normaliser(targets, in_train)
    x_all = normalise(input_norm, inputs)
    y_all = normalise(target_norm, targets)

    # Without a holdout (tiny data) the selection falls back to training rows.
    eval_idx = jnp.where(num_hold > 0, perm[:hold_cap], train_idx[:hold_cap])
    eval_count = jnp.where(num_hold > 0, num_hold, jnp.minimum(num_train, hold_cap))
    eval_weight = (jnp.arange(hold_cap) < eval_count).astype(jnp.float32)
    x_eval, y_eval, d_eval = x_all[eval_idx], y_all[eval_idx], dones[eval_idx]

    def holdout_mse(params):
        bcast = lambda a: jnp.broadcast_to(a, (num_members,) + a.shape)
        _, mse = member_losses(ens, params, bcast(x_eval), bcast(y_eval), bcast(d_eval), bcast(eval_weight))
        return mse

    # Terminal transitions are rare (CartPole: ~2% under random actions); unweighted, the
    # head learns to say "never" while the Gaussian terms dominate the loss.
    if cfg.learn_termination and cfg.balance_termination:
        positives = (dones & in_train).sum()
        pos_weight = jnp.clip((num_train - positives) / jnp.maximum(positives, 1), 1.0, 1000.0)
    else:
        pos_weight = jnp.ones((), jnp.float32)

    def loss_fn(params, x, y, d, w):
        loss, _ = member_losses(ens, params, x, y, d, w, pos_weight)
        return loss.sum(), loss.mean()

    grad_fn = jax.grad(loss_fn, has_aux=True)
    num_batches = (num_train + batch_size - 1) // batch_size
    draw = capacity + batch_size

    def epoch(carry, epoch_key):
        params, opt_state, best_params, best_mse, stall, trained = carry
        active = stall < patience if patience > 0 else jnp.ones((num_members,), jnp.bool_)
        if bootstrap:
            slots = jax.random.randint(epoch_key, (num_members, draw), 0, num_train)
        else:
            member_scores = jax.random.uniform(epoch_key, (num_members, draw))
            member_scores = jnp.where(jnp.arange(draw) < num_train, member_scores, 2.0)
            slots = jnp.argsort(member_scores, axis=-1) % num_train
        rows = train_idx[slots]  # [E, draw]

        def minibatch(b, inner):
            params, opt_state, loss_sum = inner
            idx = jax.lax.dynamic_slice_in_dim(rows, b * batch_size, batch_size, axis=1)
            weight = (b * batch_size + jnp.arange(batch_size) < num_train).astype(jnp.float32)
            weight = jnp.broadcast_to(weight, (num_members, batch_size))
            grads, loss = grad_fn(params, x_all[idx], y_all[idx], dones[idx], weight)
            new_params, new_opt_state = optimizer_step(ens.optimizer, grads, opt_state, params)
            params = _select_members(active, new_params, params)
            return params, new_opt_state, loss_sum + loss

        # Once every member has stopped, the remaining epochs cost only their evaluation.
        trips = jnp.where(active.any(), num_batches, 0)
        params, opt_state, loss_sum = jax.lax.fori_loop(
            0, trips, minibatch, (params, opt_state, jnp.zeros((), jnp.float32))
        )
        mse = holdout_mse(params)
        improved = (best_mse - mse) / jnp.maximum(jnp.abs(best_mse), 1e-12) > improvement_threshold
        improved = improved & active
        best_params = _select_members(improved, params, best_params)
        best_mse = jnp.where(improved, mse, best_mse)
        stall = jnp.where(improved, 0, stall + 1)
        trained = trained + active.astype(jnp.int32)
        out = (jnp.where(trips > 0, loss_sum / jnp.maximum(trips, 1).astype(jnp.float32), jnp.nan), mse)
        return (params, opt_state, best_params, best_mse, stall, trained), out

    mstate = mstate._replace(params=_constrain_members(mstate.params, member_sharding, num_members),
                             opt_state=_constrain_members(mstate.opt_state, member_sharding, num_members))
    initial_mse = holdout_mse(mstate.params)
    carry = (
        mstate.params,
        mstate.opt_state,
        mstate.params,
        initial_mse,
        jnp.zeros((num_members,), jnp.int32),
        jnp.zeros((num_members,), jnp.int32),
    )
    carry, (train_loss, mse_hist) = jax.lax.scan(epoch, carry, jax.random.split(key, epochs))
    _, opt_state, best_params, best_mse, _, trained = carry
    elites = jnp.argsort(best_mse)[: cfg.num_elites].astype(jnp.int32)
    new_state = ModelState(best_params, opt_state, input_norm, target_norm, elites, best_mse)
    info = FitInfo(train_loss, mse_hist, best_mse, trained, num_train, num_hold)
    return new_state, info


def predict(ens: Ensemble, mstate: ModelState, obs: Array, action: Array) -> Prediction:
    """Every member's prediction for one `(obs [*obs_shape], action)`, in env units."""
    cfg = ens.config
    x = normalise(mstate.input_norm, model_inputs(cfg, obs, action))
    x = jnp.broadcast_to(x, (cfg.num_members,) + x.shape)
    mean, logvar, term_logit = ens.apply(mstate.params, x)
    return _to_env_units(cfg, mstate, obs, mean, logvar, term_logit)


def _to_env_units(cfg: EnsembleConfig, mstate: ModelState, obs, mean, logvar, term_logit):
    """Normalised per-member outputs [..., D] -> a `Prediction` with the same batch dims."""
    mean = denormalise(mstate.target_norm, mean)
    logvar = logvar + 2.0 * jnp.log(mstate.target_norm.std)
    batch = mean.shape[:-1]
    o = cfg.obs_dim
    next_obs = obs.reshape(obs.shape[: obs.ndim - len(cfg.obs_shape)] + (o,)) + mean[..., :o]
    unflat = lambda a: a.reshape(batch + cfg.obs_shape)
    if cfg.learn_reward:
        reward_mean, reward_logvar = mean[..., o], logvar[..., o]
    else:
        reward_mean = reward_logvar = jnp.zeros(batch, mean.dtype)
    term_prob = jax.nn.sigmoid(term_logit) if cfg.learn_termination else jnp.zeros(batch, mean.dtype)
    return Prediction(unflat(next_obs), unflat(logvar[..., :o]), reward_mean, reward_logvar, term_prob)


class EvalMetrics(NamedTuple):
    """One-step accuracy of every member on given transitions (`evaluate`)."""

    obs_delta_mse: Array  # [E] on the normalised observation delta (unit variance scale)
    nll: Array  # [E] Gaussian NLL per target dim, normalised units, with the log(2 pi) term
    mean_nll: Array  # scalar: NLL of the elites' mixture-free average (ensemble mean, pooled var)


def evaluate(
    ens: Ensemble,
    mstate: ModelState,
    transitions: Transition,
    target_norm: Optional[Normaliser] = None,
    logvar_override: Optional[Array] = None,
) -> EvalMetrics:
    """Held-out accuracy of every member on a batch of transitions [B, ...].

    Errors are measured on targets standardised with `target_norm` (default: the
    model's own), so a score of 0.01 means 1% of each target's variance.
    `logvar_override` [D] gives deterministic models a fixed (e.g. fitted) variance.
    """
    cfg = ens.config
    norm = mstate.target_norm if target_norm is None else target_norm
    x = normalise(mstate.input_norm, model_inputs(cfg, transitions.obs, transitions.action))
    x = jnp.broadcast_to(x, (cfg.num_members,) + x.shape)
    mean_n, logvar_n, _ = ens.apply(mstate.params, x)
    # Back to env units, then into the evaluation's standardisation.
    mean = denormalise(mstate.target_norm, mean_n)
    logvar = logvar_n + 2.0 * jnp.log(mstate.target_norm.std)
    if logvar_override is not None:
        logvar = jnp.broadcast_to(logvar_override, mean.shape)
    y = normalise(norm, model_targets(cfg, transitions))
    mean = normalise(norm, mean)
    logvar = logvar - 2.0 * jnp.log(norm.std)
    o = cfg.obs_dim
    err = (mean - y) ** 2
    obs_mse = err[..., :o].mean((-1, -2))
    nll = (0.5 * (err * jnp.exp(-logvar) + logvar + _LOG_2PI)).mean((-1, -2))
    # Ensemble as one predictor: moment-matched Gaussian over the elites.
    el_mean, el_logvar = mean[mstate.elites], logvar[mstate.elites]
    mix_mean = el_mean.mean(0)
    mix_var = (jnp.exp(el_logvar) + el_mean**2).mean(0) - mix_mean**2
    mix_nll = (0.5 * ((mix_mean - y) ** 2 / mix_var + jnp.log(mix_var) + _LOG_2PI)).mean()
    return EvalMetrics(obs_mse, nll, mix_nll)


def open_loop_error(ens: Ensemble, mstate: ModelState, transitions: Transition, horizon: int) -> Array:
    """How one-step errors compound: k-step open-loop prediction error for k = 1..horizon.

    From every start t, the elites' mean prediction is rolled forward k steps with the
    logged actions (no resampling from the data) and compared with the logged
    observation t + k. Starts whose k steps would cross an episode end are left out.

    Args:
      transitions: consecutive transitions of one env, in time order [N, ...].
      horizon: K (static).
    Returns:
      [K] mean squared error per observation dim, each dim standardised by the
      observations' own std (so 1.0 is as bad as predicting the mean).
    """
    cfg = ens.config
    n = transitions.reward.shape[0]
    starts = n - horizon + 1
    obs_std = jnp.maximum(transitions.obs.reshape(n, -1).std(0), 1e-6)
    ends = transitions.terminated | transitions.truncated

    def predict_mean(obs, action):
        pred = predict(ens, mstate, obs, action)
        return pred.next_obs_mean[mstate.elites].mean(0)

    def rollout(t):
        def step(obs, j):
            nxt = predict_mean(obs, transitions.action[t + j])
            err = (((nxt - transitions.next_obs[t + j]).reshape(-1) / obs_std) ** 2).mean()
            return nxt, err

        _, errs = jax.lax.scan(step, transitions.obs[t], jnp.arange(horizon))
        # Step j is valid if no episode ended at steps t .. t+j-1.
        crossed = jnp.cumsum(jax.lax.dynamic_slice_in_dim(ends, t, horizon).astype(jnp.int32))
        valid = jnp.concatenate([jnp.zeros((1,), jnp.int32), crossed[:-1]]) == 0
        return errs, valid

    errs, valid = jax.vmap(rollout)(jnp.arange(starts))
    return (errs * valid).sum(0) / jnp.maximum(valid.sum(0), 1)
