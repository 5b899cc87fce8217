"""The model protocol (`Model`: init / fit / step) and the Gaussian ensemble behind it.

See the `jaxmbrl.models` docstring for the protocol; `ensemble_model` implements it with
`make_ensemble`'s ensemble, `as_planner_model_fn` turns any `Model` into a planner's
`model_fn`.
"""
from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl.models._ensemble import Ensemble, ModelState, fit, init_model
from jaxmbrl.models._optim import set_hyperparams
from jaxmbrl.models._step import ensemble_step, member_means, sample_prediction
from jaxmbrl.types import Array, PRNGKey, PyTree, Range, RewardFn, TerminationFn, Transition

PROPAGATIONS = ("ts1", "tsinf", "expectation")
_ASSIGNMENT = {"ts1": "random", "tsinf": "fixed", "expectation": "mean"}


class ModelHParams(NamedTuple):
    """The float settings every model is given (traced: each may be batched under vmap).

    A model reads the ones it needs; the ranges are in `MODEL_HPARAM_RANGES`.
    """

    learning_rate: Any = 1e-3  # (0, inf)
    weight_decay: Any = 5e-5  # [0, inf)
    holdout_ratio: Any = 0.2  # [0, 1): share of the buffer held out to measure the fit


MODEL_HPARAM_RANGES = {
    "learning_rate": Range(0.0, math.inf, low_open=True),
    "weight_decay": Range(0.0, math.inf),
    "holdout_ratio": Range(0.0, 1.0, high_open=True),
}


class ModelFitInfo(NamedTuple):
    """What one `fit` reports (float32 scalars; NaN where a model does not measure one)."""

    train_loss: Array  # [] the training loss at the end of the fit
    holdout_mse: Array  # [] mean squared error on held-out transitions
    # [] epochs of gradient steps the fit took (its longest-training member's, for an
    # ensemble with early stopping): equal to the fit's epoch cap when the cap, not the
    # held-out error, ended it. A closed-form fit leaves it NaN.
    epochs: Array = float("nan")


class Model(NamedTuple):
    """A learned dynamics model as three pure functions over its own state pytree.

    Attributes:
      init: `init(key, example: Transition, hparams: ModelHParams) -> state`;
        `example` is one unbatched transition (shapes and dtypes only).
      fit: `fit(key, state, buffer_state, hparams) -> (state, ModelFitInfo)`: learns from
        the filled part of a `buffers.BufferState` of `Transition`s [C, ...].
      step: `step(key, state, obs [N, *obs_shape], action [N] int32 or [N, A]) ->
        (next_obs [N, *obs_shape], reward [N] float32, terminated [N] bool)`.
      member_means: optional `member_means(state, obs [N, ...], action [N, ...]) ->
        [K, N, D] float32`, each of K members' predicted mean of the next observation
        (in any fixed units); what an ensemble-disagreement bonus needs (MBPO's
        `exploration="disagreement"`). None: the model has no members.
    """

    init: Callable[[PRNGKey, Transition, ModelHParams], Any]
    fit: Callable[[PRNGKey, Any, Any, ModelHParams], Tuple[Any, ModelFitInfo]]
    step: Callable[[PRNGKey, Any, Array, Array], Tuple[Array, Array, Array]]
    member_means: Optional[Callable[[Any, Array, Array], Array]] = None


def ensemble_model(
    ens: Ensemble,
    *,
    propagation: str = "ts1",
    sample: bool = True,
    reward_fn: Optional[RewardFn] = None,
    termination_fn: Optional[TerminationFn] = None,
    epochs: int = 50,
    batch_size: int = 32,
    patience: int = 5,
    max_holdout: int = 5000,
    member_sharding: Optional[jax.sharding.Sharding] = None,
) -> Model:
    """The Gaussian ensemble as a `Model` whose state is a `ModelState`.

    Args:
      ens: from `make_ensemble`.
      propagation: how `step` gives rows to elites: "ts1" a random elite per row at
        every step, "tsinf" row p always elite p * K // N, "expectation" the elites'
        mean (never sampled). See `ensemble_step`.
      sample: draw from the predicted distributions (see `sample_prediction`).
      reward_fn, termination_fn: known functions `(obs, action, next_obs) -> [...]`
        replacing the learned heads; a reward is needed from one or the other.
      epochs, batch_size, patience, max_holdout, member_sharding: `fit`'s static
        settings (`member_sharding` spreads the members over devices).

    `init` and `fit` write `hparams.learning_rate` and `weight_decay` into the optimiser
    state; `member_means` is `models.member_means` (the elites'); `fit` reports the last trained epoch's mean minibatch loss, the elites'
    mean held-out MSE (normalised targets) and the most epochs any member trained.
    """
    cfg = ens.config
    if propagation not in PROPAGATIONS:
        raise ValueError(f"Unknown propagation {propagation!r}; choose one of {PROPAGATIONS}.")
    if reward_fn is None and not cfg.learn_reward:
        raise ValueError(
            "The ensemble does not learn the reward: pass reward_fn=jaxmbrl.envs.reward_fn(env_id)"
            " or build it with make_ensemble(..., learn_reward=True)."
        )
    assignment = _ASSIGNMENT[propagation]
    sample = sample and propagation != "expectation"

    def init(key: PRNGKey, example: Transition, hparams: ModelHParams) -> ModelState:
        return init_model(ens, key, example, learning_rate=hparams.learning_rate,
                          weight_decay=hparams.weight_decay)

    def fit_model(key: PRNGKey, mstate: ModelState, buffer_state, hparams: ModelHParams):
        opt_state = set_hyperparams(mstate.opt_state, learning_rate=hparams.learning_rate,
                                    weight_decay=hparams.weight_decay)
        mstate, info = fit(ens, mstate._replace(opt_state=opt_state), key, buffer_state, epochs=epochs,
                           batch_size=batch_size, holdout_ratio=hparams.holdout_ratio,
                           max_holdout=max_holdout, patience=patience, member_sharding=member_sharding)
        last = jnp.maximum(info.epochs_trained.max() - 1, 0)
        summary = ModelFitInfo(
            train_loss=info.train_loss[last].astype(jnp.float32),
            holdout_mse=info.best_holdout_mse[mstate.elites].mean().astype(jnp.float32),
            epochs=info.epochs_trained.max().astype(jnp.float32),
        )
        return mstate, summary

    def step(key: PRNGKey, mstate: ModelState, obs: Array, action: Array):
        pred = ensemble_step(ens, mstate, key, obs, action, assignment)
        return sample_prediction(cfg, key, pred, obs, action, sample=sample, reward_fn=reward_fn,
                                 termination_fn=termination_fn)

    def means(mstate: ModelState, obs: Array, action: Array) -> Array:
        return member_means(ens, mstate, obs, action)

    return Model(init, fit_model, step, means)


class ModelStepFn:
    """A planner's `model_fn(key, state, obs, action)` over a batched `step`.

    Calling it steps one row. `over_particles(key, state, obs [P, ...], action)` steps
    the P particles of one candidate in one `step` call (the action broadcast to every
    row), which `planning.particle_step_fn` prefers to vmapping the one-row call;
    `over_population` steps every particle of every candidate in one call, which
    `planning.evaluate_candidates` prefers to both.
    """

    def __init__(self, step: Callable[[PRNGKey, Any, PyTree, Array], Tuple[PyTree, Array, Array]]):
        self.step = step

    def __call__(self, key: PRNGKey, state, obs: PyTree, action: Array):
        """One row: `(next_obs [*obs_shape], reward [], terminated [])`."""
        rows = jax.tree.map(lambda x: jnp.asarray(x)[None], (obs, action))
        next_obs, reward, terminated = self.step(key, state, *rows)
        return jax.tree.map(lambda x: x[0], next_obs), reward[0], terminated[0]

    def over_particles(self, key: PRNGKey, state, obs: PyTree, action: Array):
        """P particles of one candidate: `(next_obs [P, ...], reward [P], terminated [P])`.

        Args:
          obs: [P, *obs_shape]; action: one raw action shared by the particles.
        """
        num_particles = jax.tree.leaves(obs)[0].shape[0]
        action = jnp.asarray(action)
        return self.step(key, state, obs, jnp.broadcast_to(action, (num_particles,) + action.shape))


    def over_population(self, key: PRNGKey, state, obs: PyTree, action: Array):
        """P particles of N candidates at once, particle-major: one `step` of P * N rows.

        Rows are laid out particle-major, so a model that groups consecutive rows (the
        ensemble's "fixed" assignment) keeps contiguous blocks of every candidate's
        particles with one member, and the whole population is one matrix product per
        member with no reordering of rows.

        Args:
          obs: [P, N, *obs_shape]; action: [N, ...] raw actions, one per candidate.

        Returns:
          `(next_obs [P, N, ...], reward [P, N], terminated [P, N])`.
        """
        leaf = jax.tree.leaves(obs)[0]
        p, n = leaf.shape[:2]
        action = jnp.asarray(action)
        rows = jax.tree.map(lambda x: x.reshape((p * n,) + x.shape[2:]), obs)
        actions = jnp.broadcast_to(action, (p,) + action.shape).reshape((p * n,) + action.shape[1:])
        next_obs, reward, terminated = self.step(key, state, rows, actions)
        unrow = lambda x: x.reshape((p, n) + x.shape[1:])  # noqa: E731
        return jax.tree.map(unrow, next_obs), unrow(reward), unrow(terminated)


def as_planner_model_fn(model: Model) -> ModelStepFn:
    """A planner `model_fn` over `model.step` (see `ModelStepFn`).

    The one-row call under TSinf is particle 0 of 1: always the best elite.
    """
    return ModelStepFn(model.step)
