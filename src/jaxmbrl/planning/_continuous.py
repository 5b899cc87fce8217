"""Sampling-based planners over continuous action sequences [H, A].

Float settings (alpha, lambda_, noise_std, beta, gamma, keep_fraction, discount) may be
traced scalars, so that an algorithm can build a planner inside a function it vmaps over
hyperparameters; integer settings fix shapes and are static.
"""
from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl.planning._base import (
    check_common,
    PlanInfo,
    Planner,
    PlannerState,
    check_continuous,
    check_count,
    check_elites,
    check_float,
    evaluate_candidates,
    shift,
)
from jaxmbrl.types import Array, ModelFn, PRNGKey

_INF = float("inf")


def _bounds(spec) -> Tuple[Array, Array, Array, Array]:
    """low, high, midpoint and a quarter of the range, each [A] float32."""
    low = jnp.asarray(spec.low, jnp.float32)
    high = jnp.asarray(spec.high, jnp.float32)
    return low, high, (low + high) / 2, (high - low) / 4


def _check_common(name, spec, horizon, num_samples, num_particles, discount):
    return check_common(name, spec, horizon, num_samples, num_particles, discount, discrete=False)


def _check_alpha(name, alpha):
    check_float(name, "alpha", alpha, 0.0, 1.0, high_open=True,
                hint="; alpha is the weight kept on the old solution (0 = no smoothing)")


def _best(returns: Array, samples: Array, best_return: Array, best_plan: Array):
    i = jnp.argmax(returns)
    better = returns[i] > best_return
    return jnp.where(better, returns[i], best_return), jnp.where(better, samples[i], best_plan)


def cem_update(mean: Array, std: Array, samples: Array, returns: Array, num_elites: int,
               alpha: Any = 0.0) -> Tuple[Array, Array]:
    """One cross-entropy refit with momentum.

    The Gaussian is refit by maximum likelihood (population std, ddof=0) to the
    `num_elites` highest-return samples, then smoothed towards the old parameters:
    `new = alpha * old + (1 - alpha) * fit` (Chua et al. 2018 smooth the variance; the
    std is smoothed here, as in Pinneri et al. 2020).

    Args:
      mean, std: [H, A] current sampling distribution.
      samples: [N, H, A] evaluated sequences.
      returns: [N] their returns.
      num_elites: K (static).
      alpha: scalar momentum in [0, 1).

    Returns:
      `(mean, std)`, each [H, A].
    """
    _, idx = jax.lax.top_k(returns, num_elites)
    elites = samples[idx]
    alpha = jnp.asarray(alpha, jnp.float32)
    new_mean = alpha * mean + (1 - alpha) * elites.mean(0)
    new_std = alpha * std + (1 - alpha) * elites.std(0)
    return new_mean, new_std


def colored_noise(key: PRNGKey, beta: Any, shape: Tuple[int, ...]) -> Array:
    """Gaussian noise with power spectrum proportional to `1 / f**beta` along the last axis.

    `beta = 0` is white noise, larger `beta` gives smoother (more low-frequency)
    sequences (Pinneri et al. 2020 use beta in [2, 4] for iCEM). The spectrum is drawn as
    complex Gaussians scaled by `f**(-beta/2)`, the lowest frequency `1/T` standing in
    for f = 0, and transformed with `irfft`. The result is exactly zero-mean with unit
    variance at every position (the normalisation is computed from the spectrum, not
    estimated).

    Args:
      key: PRNG key.
      beta: scalar exponent (Python float or traced).
      shape: static output shape `(..., T)`.

    Returns:
      float32 array of `shape`.
    """
    t = shape[-1]
    num_freqs = t // 2 + 1
    freqs = jnp.maximum(jnp.fft.rfftfreq(t).astype(jnp.float32), 1.0 / t)
    scale = freqs ** (-jnp.asarray(beta, jnp.float32) / 2)
    # The zero bin (and the Nyquist bin when T is even) of a real signal's spectrum is
    # real; doubling its variance gives it the power of a full complex bin, so that
    # beta = 0 is exactly white.
    real_only = jnp.zeros(num_freqs, jnp.bool_).at[0].set(True)
    if t % 2 == 0:
        real_only = real_only.at[-1].set(True)
    re_key, im_key = jax.random.split(key)
    batch = (*shape[:-1], num_freqs)
    re = jax.random.normal(re_key, batch, jnp.float32) * jnp.where(real_only, math.sqrt(2.0), 1.0)
    im = jax.random.normal(im_key, batch, jnp.float32) * jnp.where(real_only, 0.0, 1.0)
    signal = jnp.fft.irfft(scale * (re + 1j * im), n=t).astype(jnp.float32)
    # irfft gives a real-only bin weight 1 and a full bin weight 2 (it pairs with its
    # conjugate); with the variances drawn above each contributes 2 * scale**2 / T**2
    # (real-only) or 4 * scale**2 / T**2 (full) to every position's variance.
    var = jnp.sum(jnp.where(real_only, 2.0, 4.0) * scale**2) / t**2
    return signal / jnp.sqrt(var)


def random_shooting(model_fn: ModelFn, spec, *, horizon: int, num_samples: int,
                    num_particles: int = 1, discount: Any = 1.0) -> Planner:
    """Random shooting: the best of `num_samples` uniform action sequences.

    The previous call's best sequence, shifted by one step (its last step taken from a
    fresh sample), replaces the last sample, so a good plan is not lost between steps,
    while exact ties (e.g. under survival rewards) go to a fresh sample.

    Args:
      model_fn: `(key, params, obs, action[A]) -> (next_obs, reward, terminated)`.
      spec: the environment's `EnvSpec` (continuous).
      horizon: H. num_samples: N. num_particles: P.
      discount: per-step discount of predicted rewards.

    Returns:
      A `Planner`; `plan` executes the first action of the best sequence, and
      `PlanInfo.expected_return` is that sequence's return.
    """
    name = "random_shooting"
    horizon, num_samples, num_particles = _check_common(
        name, spec, horizon, num_samples, num_particles, discount)
    low, high, mid, _ = _bounds(spec)
    shape = (num_samples, horizon, spec.action_dim)

    def init() -> PlannerState:
        mean = jnp.broadcast_to(mid, (horizon, spec.action_dim)).astype(jnp.float32)
        return PlannerState(mean=mean)

    def plan(key, state, model_params, obs):
        sample_key, eval_key = jax.random.split(key)
        samples = jax.random.uniform(sample_key, shape, jnp.float32, low, high)
        samples = samples.at[-1].set(shift(state.mean, samples[-1, -1]))
        returns = evaluate_candidates(model_fn, model_params, eval_key, obs, samples, discount,
                                      num_particles)
        best = jnp.argmax(returns)
        best_plan = samples[best]
        return best_plan[0], PlannerState(mean=best_plan), PlanInfo(returns[best], best_plan)

    return Planner(init, plan)


def cem(model_fn: ModelFn, spec, *, horizon: int, num_samples: int, num_elites: int,
        num_iters: int = 5, alpha: Any = 0.1, num_particles: int = 1,
        discount: Any = 1.0) -> Planner:
    """Cross-entropy method over action sequences (the PETS planner, Chua et al. 2018).

    Each call starts from the previous mean shifted by one step (last step: the middle
    of the action range) and from the initial std, a quarter of the action range. Each
    of `num_iters` iterations samples `mean + std * z` with `z` a standard normal
    truncated to [-2, 2], clips the samples to the action bounds, and refits mean and
    std to the `num_elites` best with `cem_update` (momentum `alpha`).

    `plan` executes the first action of the final mean, as PETS does: it averages out
    the sampling noise of any single sequence, which matters under stochastic models.
    (On the true Pendulum-v1 dynamics, executing the best sample instead scored the
    same: -158 mean return over 32 episodes either way, at H=20, N=100, K=10, 4
    iterations.) `PlanInfo.plan` is that mean and `expected_return` the mean return of
    the last iteration's elites.

    Args:
      model_fn: `(key, params, obs, action[A]) -> (next_obs, reward, terminated)`.
      spec: the environment's `EnvSpec` (continuous).
      horizon: H. num_samples: N. num_elites: K <= N. num_iters: CEM iterations per call.
      alpha: weight kept on the old mean/std in each refit, in [0, 1).
      num_particles: P. discount: per-step discount of predicted rewards.
    """
    name = "cem"
    horizon, num_samples, num_particles = _check_common(
        name, spec, horizon, num_samples, num_particles, discount)
    num_elites = check_elites(name, num_elites, num_samples)
    num_iters = check_count(name, "num_iters", num_iters)
    _check_alpha(name, alpha)
    low, high, mid, quarter = _bounds(spec)
    seq_shape = (horizon, spec.action_dim)
    init_std = jnp.broadcast_to(quarter, seq_shape).astype(jnp.float32)

    def init() -> PlannerState:
        return PlannerState(mean=jnp.broadcast_to(mid, seq_shape).astype(jnp.float32),
                            std=init_std)

    def plan(key, state, model_params, obs):
        mean = shift(state.mean, mid)
        std = shift(state.std, quarter)

        def iteration(carry, iter_key):
            mean, std, _ = carry
            sample_key, eval_key = jax.random.split(iter_key)
            z = jax.random.truncated_normal(sample_key, -2.0, 2.0, (num_samples, *seq_shape),
                                            jnp.float32)
            samples = jnp.clip(mean + std * z, low, high)
            returns = evaluate_candidates(model_fn, model_params, eval_key, obs, samples,
                                          discount, num_particles)
            elite_return = jax.lax.top_k(returns, num_elites)[0].mean()
            mean, std = cem_update(mean, std, samples, returns, num_elites, alpha)
            return (mean, std, elite_return), None

        init_carry = (mean, std, jnp.zeros((), jnp.float32))
        (mean, _, elite_return), _ = jax.lax.scan(iteration, init_carry,
                                                   jax.random.split(key, num_iters))
        mean = jnp.clip(mean, low, high)
        new_state = PlannerState(mean=mean, std=init_std)
        return mean[0], new_state, PlanInfo(elite_return, mean)

    return Planner(init, plan)


def icem(model_fn: ModelFn, spec, *, horizon: int, num_samples: int, num_elites: int,
         num_iters: int = 3, alpha: Any = 0.1, beta: Any = 2.0, gamma: Any = 1.25,
         keep_fraction: Any = 0.3, num_particles: int = 1, discount: Any = 1.0) -> Planner:
    """Improved CEM (Pinneri et al. 2020).

    Differences from `cem`:
      * samples are colored noise (`colored_noise`, exponent `beta`) along the horizon,
        scaled by std and added to the mean, then clipped to the bounds;
      * the best `keep_fraction` of the previous iteration's elites join the next
        iteration's population, and the last call's kept elites, shifted by one step
        (last step freshly sampled), join the first iteration of the next call;
      * the current mean (on the first iteration: the shifted previous mean) is a
        candidate in every iteration;
      * the population shrinks by `gamma` per iteration, `N_i = max(N * gamma**-i,
        2K)`. Shapes must be static under `lax.scan`, so every iteration draws all N
        samples and the ones beyond `N_i` are masked out of the elite selection: the
        decay changes the statistics, not the compute.

    `plan` executes the first action of the best sequence found over all iterations, as
    Pinneri et al. do; `PlanInfo.plan` is that sequence and `expected_return` its return.

    Args:
      model_fn: `(key, params, obs, action[A]) -> (next_obs, reward, terminated)`.
      spec: the environment's `EnvSpec` (continuous).
      horizon: H. num_samples: N (the first iteration's population). num_elites: K <= N.
      num_iters: iterations per call.
      alpha: momentum of the mean/std refit, in [0, 1).
      beta: colored-noise exponent (0 = white).
      gamma: population decay factor per iteration, >= 1.
      keep_fraction: fraction of the elites carried to the next iteration, in [0, 1].
      num_particles: P. discount: per-step discount of predicted rewards.
    """
    name = "icem"
    horizon, num_samples, num_particles = _check_common(
        name, spec, horizon, num_samples, num_particles, discount)
    num_elites = check_elites(name, num_elites, num_samples)
    num_iters = check_count(name, "num_iters", num_iters)
    _check_alpha(name, alpha)
    check_float(name, "gamma", gamma, 1.0, _INF, hint="; 1 keeps the population size fixed")
    check_float(name, "keep_fraction", keep_fraction, 0.0, 1.0)
    low, high, mid, quarter = _bounds(spec)
    action_dim = spec.action_dim
    seq_shape = (horizon, action_dim)
    init_std = jnp.broadcast_to(quarter, seq_shape).astype(jnp.float32)
    # Slot 0 holds the mean, slots 1..S the kept elites, the rest fresh samples.
    num_kept = min(num_elites, num_samples - 1)
    slots = jnp.arange(num_samples)
    min_population = float(min(2 * num_elites, num_samples))

    def init() -> PlannerState:
        mean = jnp.broadcast_to(mid, seq_shape).astype(jnp.float32)
        return PlannerState(mean=mean, std=init_std,
                            elites=jnp.broadcast_to(mean, (num_kept, *seq_shape)))

    def sample(key, mean, std):
        noise = colored_noise(key, beta, (num_samples, action_dim, horizon))
        return jnp.clip(mean + std * jnp.swapaxes(noise, 1, 2), low, high)

    def plan(key, state, model_params, obs):
        key, last_key = jax.random.split(key)
        mean = shift(state.mean, mid)
        std = shift(state.std, quarter)
        fresh_last = jnp.clip(mid + quarter * jax.random.normal(
            last_key, (num_kept, action_dim), jnp.float32), low, high)
        kept = jnp.concatenate([state.elites[:, 1:], fresh_last[:, None]], 1)
        n_keep = jnp.floor(jnp.asarray(keep_fraction, jnp.float32) * num_elites)
        keep_slot = (slots >= 1) & (slots <= num_kept) & (slots - 1 < n_keep)
        gamma_ = jnp.asarray(gamma, jnp.float32)

        def iteration(carry, inputs):
            mean, std, kept, best_return, best_plan = carry
            i, iter_key = inputs
            sample_key, eval_key = jax.random.split(iter_key)
            samples = sample(sample_key, mean, std)
            padded = jnp.zeros_like(samples).at[1:num_kept + 1].set(kept)
            samples = jnp.where(keep_slot[:, None, None], padded, samples)
            samples = samples.at[0].set(jnp.clip(mean, low, high))
            population = jnp.clip(jnp.floor(num_samples * gamma_ ** (-i.astype(jnp.float32))),
                                  min_population, num_samples)
            returns = evaluate_candidates(model_fn, model_params, eval_key, obs, samples,
                                          discount, num_particles)
            returns = jnp.where(slots < population, returns, -jnp.inf)
            best_return, best_plan = _best(returns, samples, best_return, best_plan)
            _, idx = jax.lax.top_k(returns, num_elites)
            kept = samples[idx[:num_kept]]
            mean, std = cem_update(mean, std, samples, returns, num_elites, alpha)
            return (mean, std, kept, best_return, best_plan), None

        init_carry = (mean, std, kept, jnp.full((), -jnp.inf, jnp.float32), mean)
        inputs = (jnp.arange(num_iters), jax.random.split(key, num_iters))
        (mean, _, kept, best_return, best_plan), _ = jax.lax.scan(iteration, init_carry, inputs)
        new_state = PlannerState(mean=mean, std=init_std, elites=kept)
        return best_plan[0], new_state, PlanInfo(best_return, best_plan)

    return Planner(init, plan)


def mppi(model_fn: ModelFn, spec, *, horizon: int, num_samples: int, num_iters: int = 1,
         lambda_: Any = 1.0, noise_std: Optional[Any] = None, alpha: Any = 0.0,
         num_particles: int = 1, discount: Any = 1.0) -> Planner:
    """Model predictive path integral control (Williams et al. 2017).

    Each iteration perturbs the mean with Gaussian noise of std `noise_std`, clips to the
    bounds, and moves the mean to the softmax(returns / lambda_)-weighted average of the
    samples; `alpha` smooths that update (`mean = alpha * old + (1 - alpha) * new`). The
    unperturbed mean is always one of the samples. Each call starts from the previous
    mean shifted by one step (last step: the middle of the action range).

    `plan` executes the first action of the final mean (on the true Pendulum-v1
    dynamics the best sample scored the same, -161 vs -162 over 32 episodes);
    `PlanInfo.plan` is that mean and `expected_return` the softmax-weighted mean of the
    last iteration's returns.

    Args:
      model_fn: `(key, params, obs, action[A]) -> (next_obs, reward, terminated)`.
      spec: the environment's `EnvSpec` (continuous).
      horizon: H. num_samples: N. num_iters: updates per call.
      lambda_: temperature (> 0) in units of return: smaller is greedier.
      noise_std: perturbation std, a scalar or [A]; `None` for a quarter of the range.
      alpha: smoothing of the mean update, in [0, 1).
      num_particles: P. discount: per-step discount of predicted rewards.
    """
    name = "mppi"
    horizon, num_samples, num_particles = _check_common(
        name, spec, horizon, num_samples, num_particles, discount)
    num_iters = check_count(name, "num_iters", num_iters)
    _check_alpha(name, alpha)
    check_float(name, "lambda_", lambda_, 0.0, _INF, low_open=True,
                hint="; it is a temperature in units of return")
    if noise_std is not None:
        check_float(name, "noise_std", noise_std, 0.0, _INF, low_open=True)
    low, high, mid, quarter = _bounds(spec)
    seq_shape = (horizon, spec.action_dim)
    sigma = quarter if noise_std is None else jnp.asarray(noise_std, jnp.float32)

    def init() -> PlannerState:
        return PlannerState(mean=jnp.broadcast_to(mid, seq_shape).astype(jnp.float32))

    def plan(key, state, model_params, obs):
        mean = shift(state.mean, mid)
        temperature = jnp.asarray(lambda_, jnp.float32)
        momentum = jnp.asarray(alpha, jnp.float32)

        def iteration(carry, iter_key):
            mean, _ = carry
            sample_key, eval_key = jax.random.split(iter_key)
            noise = jax.random.normal(sample_key, (num_samples, *seq_shape), jnp.float32)
            samples = jnp.clip(mean + sigma * noise.at[0].set(0.0), low, high)
            returns = evaluate_candidates(model_fn, model_params, eval_key, obs, samples,
                                          discount, num_particles)
            weights = jax.nn.softmax(returns / temperature)
            update = jnp.einsum("n,nha->ha", weights, samples)
            mean = momentum * mean + (1 - momentum) * update
            return (mean, jnp.sum(weights * jnp.where(weights > 0, returns, 0.0))), None

        init_carry = (mean, jnp.zeros((), jnp.float32))
        (mean, expected), _ = jax.lax.scan(iteration, init_carry, jax.random.split(key, num_iters))
        return mean[0], PlannerState(mean=mean), PlanInfo(expected, mean)

    return Planner(init, plan)
