"""Dyna-Q's configuration, hyperparameters, metrics and episode bookkeeping (both modes)."""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Tuple

import jax
import jax.numpy as jnp

from jaxmbrl.algorithms._contract import (
    MODEL_RANGES,
    NON_NEGATIVE,
    POSITIVE,
    RATE,
    UNIT,
    ConfigBase,
    as_float32,
)
from jaxmbrl.models._ensemble import ACTIVATIONS, COMPUTE_DTYPES
from jaxmbrl.types import Array, PRNGKey

MODES = ("tabular", "deep")
PLANNING_POLICIES = ("epsilon_greedy", "uniform")
EXPLORATIONS = ("epsilon_greedy", "ucb")
TERMINATIONS = ("learned", "known")


class HParams(NamedTuple):
    """Float hyperparameters, traced: `jax.vmap(train.run)(keys, hparams)` sweeps them.

    Defaults are the tabular ones (Sutton & Barto's Figure 8.2); `Config.hparams()`
    returns the defaults of the config's mode.
    """

    learning_rate: Any = 0.1  # tabular: step size alpha; deep: Adam's step size
    discount: Any = 0.95
    epsilon: Any = 0.1  # exploration rate (the end of the schedule when it decays)
    epsilon_start: Any = 1.0  # start of the linear schedule (Config.epsilon_decay_steps > 0)
    # n, planning updates per real env step: a float here like every HParams field,
    # rounded and clipped to [0, Config.max_planning_steps] where it is used.
    planning_steps: Any = 5.0
    target_tau: Any = 1.0  # deep: target <- tau * online + (1 - tau) * target
    model_learning_rate: Any = 1e-3
    model_weight_decay: Any = 5e-5
    holdout_ratio: Any = 0.2
    # Tabular only. kappa > 0 is Dyna-Q+ (Sutton & Barto section 8.3): planning rewards
    # r + kappa * sqrt(steps since (s, a) was last tried), and planning also tries the
    # never-taken actions of visited states (as returning to s with reward 0).
    bonus_kappa: Any = 0.0
    ucb_c: Any = 2.0  # Config.exploration="ucb": the width c of the confidence bonus


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    """Static Dyna-Q configuration: shapes, counts and names (changing one recompiles).

    `mode="tabular"` is Sutton & Barto's tabular Dyna-Q (a Q-table and a deterministic
    last-seen model table) for finite-state envs (DynaMaze, FrozenLake-misc).
    `mode="deep"` is DQN plus a learned model (the Gaussian ensemble, or any
    `models.Model` passed to `make_train`) that generates one-step synthetic transitions
    from replayed states; `max_planning_steps=0` is plain DQN.

    One iteration is `steps_per_iteration` env steps in one environment (seeds are
    batched by vmapping `run`); episodes run across iteration boundaries, and the
    lengths and returns of the first `max_episodes` completed episodes are kept in the
    state (`state.episodes`).

    The defaults are tabular Dyna-Q on the Dyna Maze with n up to 50 (Figure 8.2; see
    `scripts/dyna_maze.py`); the deep-mode fields default to `scripts/dyna_cartpole.py`'s
    settings where they matter and are ignored by the tabular mode.
    """

    NAME = "dyna"
    HPARAMS = HParams

    env_id: str = "DynaMaze"
    # Keyword arguments of the env (a mapping, e.g. {"is_slippery": False} for
    # FrozenLake-misc or {"layout": rows} for DynaMaze); recorded in config.json.
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    mode: str = "tabular"
    num_iterations: int = 20
    steps_per_iteration: int = 1000
    # Upper bound on the planning updates per real step. The number actually made is
    # the traced `HParams.planning_steps`, clipped to [0, max_planning_steps], so one
    # compiled program sweeps n; 0 here removes planning (and in deep mode the model).
    max_planning_steps: int = 50
    max_episodes: int = 1000
    # Exploration: linear from HParams.epsilon_start to HParams.epsilon over this many
    # env steps (counting deep mode's random warm-up); 0 keeps HParams.epsilon throughout.
    epsilon_decay_steps: int = 0
    # Tabular action selection: "epsilon_greedy", or "ucb" (argmax Q(s, a) + c *
    # sqrt(ln t / N(s, a)), untried actions first; t the run's env step, c HParams.ucb_c).
    exploration: str = "epsilon_greedy"
    # --- deep mode: DQN ---
    policy_hidden_sizes: Tuple[int, ...] = (64, 64)  # the Q-network
    policy_batch_size: int = 64
    buffer_capacity: int = 0  # 0: large enough for every step of `run`
    warmup_steps: int = 1000  # uniformly random env steps run inside `init`
    policy_updates_per_step: int = 1  # Q updates on real replayed batches per env step
    target_update_period: int = 500  # Q updates (real and planned) between target moves
    double_q: bool = True
    huber_delta: float = 1.0
    num_eval_episodes: int = 5  # greedy episodes at the end of every iteration; 0: none
    eval_max_steps: int = 0  # 0: the env's time limit
    # --- deep mode: model and planning ---
    model_train_every: int = 1000  # env steps between model refits; divides steps_per_iteration
    num_members: int = 5
    num_model_elites: int = 5
    model_hidden_sizes: Tuple[int, ...] = (64, 64)
    model_activation: str = "silu"  # models.ACTIVATIONS
    model_compute_dtype: str = "float32"  # or "bfloat16" products (models.make_ensemble)
    model_epochs: int = 5  # per refit, over the whole buffer, warm-started
    model_batch_size: int = 256
    # Early stopping watches the held-out MSE of the Gaussian part only, which settles
    # long before the termination head has learned anything: 0 keeps every epoch.
    model_patience: int = 0
    max_holdout: int = 2000
    planning_batch_size: int = 0  # 0: policy_batch_size
    planning_policy: str = "epsilon_greedy"  # or "uniform"
    # Which termination synthetic transitions use: "learned" (the ensemble's head, a
    # Bernoulli draw from its probability) or "known" (`envs.termination_fn(env_id)` on
    # the predicted next observation; classic-control ids).
    termination: str = "learned"

    @classmethod
    def tiny(cls, **overrides) -> "Config":
        """Seconds-scale settings for tests (deep ones when `mode="deep"` is passed)."""
        if overrides.get("mode", "tabular") == "deep":
            base = dict(
                env_id="CartPole-v1", num_iterations=2, steps_per_iteration=64, max_planning_steps=2,
                max_episodes=32, epsilon_decay_steps=100, policy_hidden_sizes=(16,), policy_batch_size=16,
                warmup_steps=32, target_update_period=10, num_eval_episodes=2, eval_max_steps=50,
                model_train_every=32, num_members=2, num_model_elites=2, model_hidden_sizes=(16,),
                model_epochs=2, model_batch_size=32, max_holdout=64,
            )
        else:
            base = dict(num_iterations=2, steps_per_iteration=200, max_planning_steps=5, max_episodes=32)
        base.update(overrides)
        return cls(**base)

    def hparams(self) -> "HParams":
        """Default hyperparameters for this mode, with `planning_steps = max_planning_steps`."""
        n = float(max(self.max_planning_steps, 0))
        if self.mode == "deep":
            return HParams(learning_rate=1e-3, discount=0.99, epsilon=0.05, epsilon_start=1.0,
                           planning_steps=n)
        return HParams(planning_steps=n)

    @property
    def planning(self) -> bool:
        return self.max_planning_steps > 0

    def _validate(self) -> None:
        self._choice("mode", MODES)
        self._choice("exploration", EXPLORATIONS)
        positive = ("num_iterations", "steps_per_iteration", "max_episodes")
        if self.mode == "deep":
            positive += (
                "policy_batch_size", "policy_updates_per_step", "target_update_period", "num_members",
                "num_model_elites", "model_epochs", "model_batch_size", "max_holdout",
            )
        self._ints(1, *positive)
        self._ints(0, "max_planning_steps", "epsilon_decay_steps", "buffer_capacity", "warmup_steps",
                   "num_eval_episodes", "eval_max_steps", "model_train_every", "model_patience",
                   "planning_batch_size")
        if self.mode == "tabular":
            return
        if self.exploration != "epsilon_greedy":
            raise ValueError(
                f"dyna.Config.exploration={self.exploration!r} is tabular only; deep mode explores "
                f"epsilon-greedily (set exploration='epsilon_greedy' or mode='tabular')."
            )
        self._widths("policy_hidden_sizes", "model_hidden_sizes")
        self._choice("model_activation", ACTIVATIONS)
        self._choice("model_compute_dtype", COMPUTE_DTYPES)
        if self.warmup_steps < self.policy_batch_size:
            raise ValueError(
                f"dyna.Config.warmup_steps={self.warmup_steps} must be >= policy_batch_size="
                f"{self.policy_batch_size}: the first update samples from the random warm-up data."
            )
        if self.buffer_capacity and self.buffer_capacity < self.warmup_steps:
            raise ValueError(
                f"dyna.Config.buffer_capacity={self.buffer_capacity} is smaller than warmup_steps="
                f"{self.warmup_steps}; raise it or set 0 (keep every step)."
            )
        if not self.huber_delta > 0:
            raise ValueError(f"dyna.Config.huber_delta must be > 0, got {self.huber_delta!r}.")
        if self.planning:
            if self.model_train_every < 1 or self.steps_per_iteration % self.model_train_every:
                raise ValueError(
                    f"dyna.Config.model_train_every={self.model_train_every} must be >= 1 and divide "
                    f"steps_per_iteration={self.steps_per_iteration} (refits happen at fixed steps)."
                )
            self._at_most("num_model_elites", "num_members")
            self._choice("termination", TERMINATIONS)
            self._choice("planning_policy", PLANNING_POLICIES)


Config.HPARAM_RANGES = {
    **MODEL_RANGES, "learning_rate": POSITIVE, "discount": UNIT, "epsilon": UNIT, "epsilon_start": UNIT,
    "planning_steps": NON_NEGATIVE, "target_tau": RATE, "bonus_kappa": NON_NEGATIVE, "ucb_c": NON_NEGATIVE,
}


class Metrics(NamedTuple):
    """Per-iteration metrics (each a scalar; stacked [iterations] by `run`)."""

    iteration: Array  # int32, 0-based
    env_steps: Array  # int32, total so far (deep mode counts the random warm-up)
    episodes: Array  # int32 episodes completed this iteration
    episode_length: Array  # mean length of those episodes (NaN if none)
    episode_return: Array  # mean return of those episodes (NaN if none)
    eval_return: Array  # deep: mean greedy return at the end of the iteration; NaN otherwise
    epsilon: Array  # exploration rate at the end of the iteration
    td_error: Array  # mean |TD error| of the updates on real transitions
    q_loss: Array  # deep: mean Huber loss of those updates; NaN in tabular mode
    model_holdout_mse: Array  # deep: elites' held-out MSE at the last refit; NaN without a model
    planning_updates: Array  # int32 planning updates made this iteration


class EpisodeLog(NamedTuple):
    """Lengths and returns of completed episodes, in order, in fixed-size arrays."""

    length: Array  # [] int32 steps of the running episode
    ret: Array  # [] float32 return of the running episode
    count: Array  # [] int32 episodes completed so far
    lengths: Array  # [max_episodes] int32 (0 where not completed yet)
    returns: Array  # [max_episodes] float32 (0 where not completed yet)


class Train(NamedTuple):
    """`init(key, hparams) -> State`; `step(state) -> (state, Metrics)`;
    `run(key, hparams) -> (state, Metrics[num_iterations])`. All pure and jittable."""

    config: Config
    init: Callable[[PRNGKey, HParams], Any]
    step: Callable[[Any], Tuple[Any, Metrics]]
    run: Callable[[PRNGKey, HParams], Tuple[Any, Metrics]]
    model: Any = None  # deep mode with planning: the `models.Model` whose state is `State.model`
    spec: Any = None  # the env's EnvSpec
    # `policy(state, n) -> (act, policy_state)`: the greedy controller of `state` for n
    # envs, in `evaluate`'s shape (the evaluation's own; `jaxmbrl render` replays it).
    policy: Callable[[Any, int], Tuple[Callable, Any]] = None


as_float_hparams = as_float32


def num_planning_steps(hp: HParams, max_planning_steps: int) -> Array:
    """[] int32 n: the traced `hp.planning_steps`, rounded and clipped to [0, max]."""
    n = jnp.round(jnp.asarray(hp.planning_steps, jnp.float32))
    return jnp.clip(n, 0, max_planning_steps).astype(jnp.int32)


def episode_log(max_episodes: int) -> EpisodeLog:
    return EpisodeLog(
        length=jnp.zeros((), jnp.int32),
        ret=jnp.zeros((), jnp.float32),
        count=jnp.zeros((), jnp.int32),
        lengths=jnp.zeros((max_episodes,), jnp.int32),
        returns=jnp.zeros((max_episodes,), jnp.float32),
    )


def log_step(log: EpisodeLog, reward: Array, done: Array):
    """Adds one env step; returns `(log, (done, length, return))` of the finished episode."""
    length = log.length + 1
    ret = log.ret + reward
    # An index past the end drops the write: episodes beyond max_episodes go unrecorded.
    slot = jnp.where(done, log.count, log.lengths.shape[0])
    log = EpisodeLog(
        length=jnp.where(done, 0, length).astype(jnp.int32),
        ret=jnp.where(done, 0.0, ret).astype(jnp.float32),
        count=log.count + done.astype(jnp.int32),
        lengths=log.lengths.at[slot].set(length, mode="drop"),
        returns=log.returns.at[slot].set(ret, mode="drop"),
    )
    return log, (done, length, ret)


def episode_stats(done: Array, length: Array, ret: Array):
    """`(count, mean length, mean return)` of the episodes that ended in steps [T]."""
    count = done.sum(dtype=jnp.int32)
    safe = jnp.maximum(count, 1).astype(jnp.float32)
    mean_len = jnp.where(count > 0, jnp.where(done, length, 0).sum() / safe, jnp.nan)
    mean_ret = jnp.where(count > 0, jnp.where(done, ret, 0.0).sum() / safe, jnp.nan)
    return count, mean_len.astype(jnp.float32), mean_ret.astype(jnp.float32)
