"""MuZero (Schrittwieser et al. 2020) with Gumbel MuZero's search (Danihelka et al. 2022),
compiled end to end.

One iteration = `steps_per_iteration` vectorised env steps, a `lax.scan` over blocks of
`model_train_every` steps. At every step each of the `num_envs` envs runs a tree search
(mctx, through `planning.mcts_search`) over the learned latent model from its current
observation and acts on it; every step is written to a trajectory replay together with the
search's policy (Gumbel MuZero's improved policy, or pUCT's visit distribution) and root
value. After each block, `updates` gradient steps train the three networks on
`model_batch_size` windows of `unroll_steps + td_steps + 1` consecutive steps:

- the representation encodes the window's first observation and the dynamics unroll it
  along the stored actions for `unroll_steps` (K) steps (MuZero's gradient scaling of 1/2
  at each dynamics step, each unrolled step's loss weighted 1/K);
- at each unrolled step k the prediction is trained towards the stored search policy and
  an n-step value target z_k = sum_{i<n} discount^i r_{k+i} + discount^n v(o_{k+n}), with
  v from a target network (a Polyak average of the parameters, `target_tau`) evaluated on
  the stored observation; the dynamics' reward head towards r_{k-1};
- a termination inside the window stops the sum (no bootstrap); a truncation (time limit)
  bootstraps from the target value of its own state, the last one stored; steps past an
  episode's end are absorbing (value and reward targets 0, policy loss masked).

Value and reward heads are categorical over bins in symlog space with two-hot targets
(`value_bins`), or scalars regressed in symlog space (`value_bins=0`). The first
`warmup_iterations` act uniformly at random (uniform policy targets); `init` runs them, so
every `step` is the same compiled iteration. After each iteration the search acts greedily
(no Gumbel noise, no Dirichlet noise) on `num_eval_episodes` fresh episodes.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import optax

from jaxmbrl import buffers, envs, models, planning
from jaxmbrl.agents import actor_critic as ac_lib
from jaxmbrl.algorithms._contract import (
    NON_NEGATIVE,
    POSITIVE,
    RATE,
    UNIT,
    ConfigBase,
    as_float32,
    evaluate,
    resolve_env,
)
from jaxmbrl.algorithms._episodes import run_after_warmup, scan_env_steps
from jaxmbrl.models._muzero import head_loss
from jaxmbrl.models._rssm import ENCODERS
from jaxmbrl.types import Array, PRNGKey

SELECTIONS = ("gumbel", "puct")


class HParams(NamedTuple):
    """Float hyperparameters, traced: `jax.vmap(train.run)(keys, hparams)` sweeps them."""

    learning_rate: Any = 1e-3
    discount: Any = 0.99
    target_tau: Any = 0.01  # Polyak rate of the target network that values bootstrap from
    value_weight: Any = 0.25  # weight of the value loss (MuZero Reanalyse: 0.25)
    max_grad_norm: Any = 5.0
    gumbel_scale: Any = 1.0  # Gumbel MuZero's root noise while acting (0 when evaluating)
    pb_c_init: Any = 1.25  # pUCT's exploration constant (selection "puct")
    dirichlet_fraction: Any = 0.25  # pUCT's root noise while acting (0 when evaluating)


@dataclasses.dataclass(frozen=True)
class Config(ConfigBase):
    """Static MuZero configuration: shapes, counts and names (changing one recompiles).

    The defaults are the CartPole-v1 run of `scripts/muzero_cartpole.py`.
    """

    NAME = "muzero"
    HPARAMS = HParams

    env_id: str = "CartPole-v1"
    env_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    num_envs: int = 8
    num_iterations: int = 30  # in total, warm-up ones included
    warmup_iterations: int = 1
    steps_per_iteration: int = 200  # vectorised steps: num_envs env steps each
    model_train_every: int = 10  # updates after every this many vectorised steps; divides steps_per_iteration
    train_ratio: int = 32  # replayed unroll steps per env step
    model_batch_size: int = 64  # windows per update
    buffer_capacity: int = 0  # vectorised steps kept; 0 keeps the whole run
    # Search.
    selection: str = "gumbel"  # or "puct"
    num_simulations: int = 32
    # Learning.
    unroll_steps: int = 5  # K
    td_steps: int = 10  # n of the n-step value targets
    # Networks.
    latent_size: int = 64
    model_hidden_sizes: Tuple[int, ...] = (128, 128)  # representation and dynamics
    policy_hidden_sizes: Tuple[int, ...] = (128,)  # prediction (policy, value) and reward heads
    value_bins: int = 101  # categorical value and reward heads (two-hot in symlog space); 0: scalar
    encoder: str = "auto"  # "mlp" | "cnn" | "auto" (CNN for [H, W, C] observations)
    cnn_depth: int = 16
    # Evaluation.
    num_eval_episodes: int = 4

    @classmethod
    def tiny(cls, **overrides) -> "Config":
        """Seconds-scale settings for tests."""
        base = dict(
            num_envs=2, num_iterations=3, warmup_iterations=1, steps_per_iteration=16, model_train_every=8,
            train_ratio=4, model_batch_size=4, num_simulations=4, unroll_steps=2, td_steps=3, latent_size=8,
            model_hidden_sizes=(16,), policy_hidden_sizes=(16,), value_bins=11, cnn_depth=4, num_eval_episodes=2,
        )
        base.update(overrides)
        return cls(**base)

    @property
    def window(self) -> int:
        """Consecutive steps one training sample reads: unroll_steps + td_steps + 1."""
        return self.unroll_steps + self.td_steps + 1

    @property
    def updates_per_train(self) -> int:
        """Updates after each block: train_ratio * env steps per block / replayed unroll steps per update."""
        return round(self.train_ratio * self.model_train_every * self.num_envs
                     / (self.model_batch_size * (self.unroll_steps + 1)))

    def _validate(self) -> None:
        self._ints(1, "num_envs", "num_iterations", "steps_per_iteration", "model_train_every", "train_ratio",
                   "model_batch_size", "num_simulations", "unroll_steps", "td_steps", "latent_size", "cnn_depth",
                   "num_eval_episodes")
        self._ints(0, "buffer_capacity", "value_bins")
        if not 1 <= self.warmup_iterations < self.num_iterations:
            raise ValueError(
                f"muzero.Config.warmup_iterations={self.warmup_iterations} must be >= 1 (the replay needs "
                f"windows) and < num_iterations={self.num_iterations}."
            )
        self._divides("model_train_every", "steps_per_iteration")
        if self.updates_per_train < 1:
            raise ValueError(
                f"muzero.Config.train_ratio={self.train_ratio} gives fewer than one update per block of "
                f"{self.model_train_every} steps x {self.num_envs} envs (an update replays model_batch_size * "
                f"(unroll_steps + 1) = {self.model_batch_size * (self.unroll_steps + 1)} steps); raise "
                f"train_ratio or model_train_every."
            )
        if self.warmup_iterations * self.steps_per_iteration < self.window:
            raise ValueError(
                f"muzero.Config: the warm-up iterations give {self.warmup_iterations * self.steps_per_iteration} "
                f"steps per env, fewer than one window of unroll_steps + td_steps + 1 = {self.window}; raise "
                f"warmup_iterations or steps_per_iteration."
            )
        if self.buffer_capacity and self.buffer_capacity < self.window:
            raise ValueError(f"muzero.Config.buffer_capacity={self.buffer_capacity} is below one window "
                             f"({self.window} steps).")
        if self.value_bins == 1:
            raise ValueError("muzero.Config.value_bins must be 0 (scalar heads) or at least 2, got 1.")
        self._choice("selection", SELECTIONS)
        self._choice("encoder", ENCODERS)
        self._widths("model_hidden_sizes", "policy_hidden_sizes")


Config.HPARAM_RANGES = {
    "learning_rate": POSITIVE, "discount": UNIT, "target_tau": RATE, "value_weight": NON_NEGATIVE,
    "max_grad_norm": POSITIVE, "gumbel_scale": NON_NEGATIVE, "pb_c_init": NON_NEGATIVE, "dirichlet_fraction": UNIT,
}


class Step(NamedTuple):
    """One replay record per env (leaves [num_envs, ...] per stored step)."""

    obs: Array  # o_t
    action: Array  # [] int32 a_t, chosen by the search at o_t
    reward: Array  # r_{t+1}
    terminated: Array  # bool: a_t ended the episode in a terminal state
    truncated: Array  # bool: the episode was cut after a_t (time limit)
    policy: Array  # [A] float32 the search's policy target at o_t
    value: Array  # [] float32 the search's root value at o_t (diagnostics)


class Targets(NamedTuple):
    """Training targets of one window for unroll steps k = 0..K (leaves [K + 1])."""

    value: Array  # n-step value targets z_k (0 past the episode's end)
    reward: Array  # r_{k-1} for k >= 1 (index 0 unused, 0)
    policy: Array  # [K + 1, A] search policies
    in_episode: Array  # float32 1 where step k is still in the window's first episode


class Metrics(NamedTuple):
    """Per-iteration metrics (each a scalar; stacked [iterations] by `run`)."""

    iteration: Array  # int32, 0-based, warm-up iterations included
    env_steps: Array  # int32, total so far
    episode_return: Array  # mean return of training episodes completed this iteration (NaN if none)
    episodes: Array  # int32
    eval_return: Array  # mean return of the greedy search's evaluation episodes (NaN while exploring)
    loss: Array  # total loss, mean over the iteration's updates (NaN while exploring)
    value_loss: Array
    reward_loss: Array
    policy_loss: Array
    search_value: Array  # mean root value of the iteration's searches (NaN while exploring)


class State(NamedTuple):
    """Everything a MuZero run carries between iterations (one seed; the runner vmaps it).

    A checkpoint is this pytree; `env_steps` counts the env steps taken so far.
    """

    key: PRNGKey
    hparams: HParams
    env_state: Any  # gymnax state [B, ...]
    obs: Array  # [B, *obs_shape]
    episode_return: Array  # [B]
    buffer: buffers.BufferState  # Step records with leaves [C, B, ...]
    params: Any  # the three networks' parameters
    target_params: Any  # their Polyak average, which values bootstrap from
    opt_state: Any
    iteration: Array  # int32
    env_steps: Array  # int32
    warmup: Metrics  # [warmup_iterations]


class Train(NamedTuple):
    """`init(key, hparams) -> State`; `step(state) -> (state, Metrics)`;
    `run(key, hparams) -> (state, Metrics[num_iterations])`. All pure and jittable."""

    config: Config
    init: Callable[[PRNGKey, HParams], State]
    step: Callable[[State], Tuple[State, Metrics]]
    run: Callable[[PRNGKey, HParams], Tuple[State, Metrics]]
    model: models.MuZeroModel
    spec: envs.EnvSpec
    # `policy(state, n) -> (act, policy_state)`: the greedy controller of `state` for n
    # envs, in `evaluate`'s shape (the evaluation's own; `jaxmbrl render` replays it).
    policy: Callable[[Any, int], Tuple[Callable, Any]] = None


def supports(spec: envs.EnvSpec) -> Optional[str]:
    """Discrete actions only (a tree search over actions); the evaluation needs an episode length."""
    if not spec.discrete or spec.max_steps < 1:
        return None
    return "cnn" if len(spec.obs_shape) == 3 else ""


def value_targets(window: Step, values: Array, discount: Any, unroll_steps: int, td_steps: int) -> Targets:
    """The targets of one window of `unroll_steps + td_steps + 1` consecutive records.

    Args:
      window: `Step` records with leaves [W, ...] (one env, consecutive steps).
      values: [W] target-network values v(o_j) of the window's observations.
      discount: scalar. unroll_steps: K. td_steps: n (static).

    Returns:
      `Targets` for k = 0..K: z_k = sum_{i<n} discount^i r_{k+i} + discount^n v_{k+n}
      within the episode of step 0; a termination at j stops the sum after r_j; a
      truncation at j adds discount^{j-k+1} v_j (its own state's value stands in for the
      successor's, which is not stored).
    """
    k_steps, n = unroll_steps + 1, td_steps
    discount = jnp.asarray(discount, jnp.float32)
    done = (window.terminated | window.truncated).astype(jnp.float32)
    # same[j] = 1 while record j is in the episode the window starts in.
    same = jnp.concatenate([jnp.ones((1,), jnp.float32), jnp.cumprod(1.0 - done[:-1])])
    idx = jnp.arange(k_steps)[:, None] + jnp.arange(n)[None, :]  # [K + 1, n]
    powers = discount ** jnp.arange(n, dtype=jnp.float32)
    rewards = jnp.sum(powers * window.reward[idx] * same[idx], -1)
    truncated = jnp.sum(discount * powers * same[idx] * window.truncated[idx] * values[idx], -1)
    boot = discount**n * same[jnp.arange(k_steps) + n] * values[jnp.arange(k_steps) + n]
    in_episode = same[:k_steps]
    reward = jnp.concatenate([jnp.zeros((1,), jnp.float32), window.reward[:unroll_steps] * same[:unroll_steps]])
    return Targets(value=(rewards + truncated + boot) * in_episode, reward=reward,
                   policy=window.policy[:k_steps], in_episode=in_episode)


def _scale_gradient(x: Array, scale: float) -> Array:
    return x * scale + jax.lax.stop_gradient(x) * (1.0 - scale)


def make_train(config: Config, *, env=None) -> Train:
    """Builds MuZero's pure `init/step/run` for `config`.

    Args:
      env: an environment that is not registered: a gymnax env object or `(env, params)`.
    Raises:
      ValueError for an invalid config or a continuous action space; `envs.UnknownEnvError`
      for an unknown env id; `envs.MissingExtraError` without mctx.
    """
    cfg = config
    cfg.validate()
    env, env_params, spec = resolve_env(cfg, env)
    if not spec.discrete:
        raise ValueError(
            f"muzero searches a tree over discrete actions, but {spec.env_id} is continuous "
            f"({spec.action_dim}-dimensional actions); use mbpo, pets or dreamer there."
        )
    if spec.max_steps < 1:
        raise ValueError(f"{spec.env_id} has no episode length; MuZero's evaluation needs one.")
    net = models.make_muzero_model(spec.obs_shape, spec.num_actions, latent_size=cfg.latent_size,
                                   hidden_sizes=cfg.model_hidden_sizes, head_hidden_sizes=cfg.policy_hidden_sizes,
                                   num_bins=cfg.value_bins, encoder=cfg.encoder, cnn_depth=cfg.cnn_depth)
    num_actions = spec.num_actions

    def latent_step(key, params, latent, action):
        next_latent, reward = net.dynamics(params, latent, action)
        return next_latent, net.value(reward), jnp.zeros((), jnp.bool_)

    search = planning.mcts_search(
        latent_step, spec, num_simulations=cfg.num_simulations, horizon=cfg.num_simulations,
        selection=cfg.selection, value_fn=lambda params, latent: net.value(net.predict(params, latent)[1]),
        prior_fn=lambda params, latent: net.predict(params, latent)[0])
    blocks = cfg.steps_per_iteration // cfg.model_train_every
    updates = cfg.updates_per_train
    capacity = cfg.buffer_capacity or cfg.num_iterations * cfg.steps_per_iteration
    nan = jnp.full((), jnp.nan, jnp.float32)

    def search_hparams(hp: HParams, greedy: bool):
        zero = jnp.zeros((), jnp.float32)
        if cfg.selection == "gumbel":
            return planning.MCTSHParams(discount=hp.discount, gumbel_scale=zero if greedy else hp.gumbel_scale)
        return planning.PUCTHParams(discount=hp.discount, pb_c_init=hp.pb_c_init,
                                    dirichlet_fraction=zero if greedy else hp.dirichlet_fraction)

    def act(key, params, obs, hp: HParams, greedy: bool):
        """Searches from each of obs [n]: (actions [n] int32, policies [n, A], root values [n])."""
        latent = net.represent(params, obs)
        keys = jax.random.split(key, obs.shape[0])
        out = jax.vmap(search, in_axes=(0, None, 0, None))(keys, params, latent, search_hparams(hp, greedy))
        return out.action, out.action_weights, out.root_value

    # ----- acting -----------------------------------------------------------------------

    def act_and_step(key, state: State, explore_randomly: bool):
        k_act, k_env = jax.random.split(key)
        if explore_randomly:
            action = jax.random.randint(k_act, (cfg.num_envs,), 0, num_actions, jnp.int32)
            policy = jnp.full((cfg.num_envs, num_actions), 1.0 / num_actions, jnp.float32)
            value = jnp.zeros((cfg.num_envs,), jnp.float32)
        else:
            with jax.named_scope("plan"):
                action, policy, value = act(k_act, state.params, state.obs, state.hparams, greedy=False)
        with jax.named_scope("env"):
            transition, obs, env_state = envs.batch_step(env, env_params, k_env, state.env_state, state.obs, action)
        record = Step(state.obs, action, transition.reward, transition.terminated, transition.truncated, policy, value)
        state = state._replace(env_state=env_state, obs=obs, env_steps=state.env_steps + cfg.num_envs,
                               buffer=buffers.add(state.buffer, jax.tree.map(lambda a: a[None], record)))
        return state, transition, value.mean()

    def env_steps_scan(state: State, num_steps: int, explore_randomly: bool):
        state, done_sum, done_count, values = scan_env_steps(
            lambda key, state: act_and_step(key, state, explore_randomly), state, num_steps)
        return state, done_sum, done_count, values.mean()

    # ----- learning ---------------------------------------------------------------------

    def loss_fn(params, batch: Step, targets: Targets, hp: HParams):
        """Batch [b, W] windows -> (loss, per-term means)."""
        latent = net.represent(params, batch.obs[:, 0])

        def unroll(latent, action):
            next_latent, reward = net.dynamics(params, latent, action)
            return _scale_gradient(next_latent, 0.5), (next_latent, reward)

        _, (latents, rewards) = jax.lax.scan(unroll, latent, jnp.swapaxes(batch.action[:, :cfg.unroll_steps], 0, 1))
        latents = jnp.concatenate([latent[None], latents])  # [K + 1, b, L]
        logits, values = net.predict(params, latents)
        tgt = jax.tree.map(lambda a: jnp.swapaxes(a, 0, 1), targets)  # [K + 1, b, ...]
        value_loss = head_loss(values, tgt.value, cfg.value_bins)  # [K + 1, b]
        policy_loss = -jnp.sum(tgt.policy * jax.nn.log_softmax(logits, -1), -1) * tgt.in_episode
        reward_loss = head_loss(rewards, tgt.reward[1:], cfg.value_bins)  # [K, b]
        # Step 0 weighs 1; the K unrolled steps share a weight of 1 (MuZero's 1/K).
        weights = jnp.concatenate([jnp.ones((1,)), jnp.full((cfg.unroll_steps,), 1.0 / cfg.unroll_steps)])
        per_step = hp.value_weight * value_loss + policy_loss
        per_step = per_step.at[1:].add(reward_loss)
        loss = jnp.sum(weights[:, None] * per_step, 0).mean()
        return loss, (value_loss.mean(), reward_loss.mean(), policy_loss.mean())

    def train_once(state: State, key) -> Tuple[State, dict]:
        hp = state.hparams
        batch = buffers.sample_env_sequences(key, state.buffer, cfg.model_batch_size, cfg.window)
        with jax.named_scope("policy_update"):
            _, target_values = net.predict(state.target_params, net.represent(state.target_params, batch.obs))
            targets = jax.vmap(value_targets, in_axes=(0, 0, None, None, None))(
                batch, net.value(target_values), hp.discount, cfg.unroll_steps, cfg.td_steps)
            (loss, (value_loss, reward_loss, policy_loss)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
                state.params, batch, jax.lax.stop_gradient(targets), hp)
            params, opt_state, _ = ac_lib.clipped_adam_step(grads, state.opt_state, state.params, hp.learning_rate,
                                                            hp.max_grad_norm)
            target_params = optax.incremental_update(params, state.target_params, hp.target_tau)
        out = dict(loss=loss, value_loss=value_loss, reward_loss=reward_loss, policy_loss=policy_loss)
        return state._replace(params=params, target_params=target_params, opt_state=opt_state), out

    def train_phase(state: State) -> Tuple[State, dict]:
        key, k_train = jax.random.split(state.key)
        state, outs = jax.lax.scan(train_once, state._replace(key=key), jax.random.split(k_train, updates))
        return state, {k: v.mean() for k, v in outs.items()}

    # ----- loops ------------------------------------------------------------------------

    def greedy_policy(state: State, n: int):
        del n  # the search starts afresh at every step

        def greedy(k, obs, policy_state, is_first):
            del is_first
            return act(k, state.params, obs, state.hparams, greedy=True)[0], policy_state

        return greedy, None

    def greedy_return(key, state: State):
        return evaluate(env, env_params, key, *greedy_policy(state, cfg.num_eval_episodes), cfg.num_eval_episodes,
                        spec.max_steps)

    def metrics_of(state, done_sum, done_count, eval_return, losses, search_value):
        return Metrics(
            iteration=state.iteration, env_steps=state.env_steps,
            episode_return=jnp.where(done_count > 0, done_sum / jnp.maximum(done_count, 1), jnp.nan),
            episodes=done_count, eval_return=eval_return, search_value=search_value, **losses,
        )

    nan_losses = dict(loss=nan, value_loss=nan, reward_loss=nan, policy_loss=nan)

    def explore_iteration(state: State) -> Tuple[State, Metrics]:
        state, done_sum, done_count, _ = env_steps_scan(state, cfg.steps_per_iteration, True)
        metrics = metrics_of(state, done_sum, done_count, nan, nan_losses, nan)
        return state._replace(iteration=state.iteration + 1), metrics

    def block(carry, _):
        state, done_sum, done_count = carry
        state, d_sum, d_count, value = env_steps_scan(state, cfg.model_train_every, False)
        state, losses = train_phase(state)
        return (state, done_sum + d_sum, done_count + d_count), (losses, value)

    def step(state: State) -> Tuple[State, Metrics]:
        carry = (state, jnp.zeros((), jnp.float32), jnp.zeros((), jnp.int32))
        (state, done_sum, done_count), (losses, values) = jax.lax.scan(block, carry, None, length=blocks)
        key, k_eval = jax.random.split(state.key)
        state = state._replace(key=key)
        with jax.named_scope("eval"):
            eval_return = greedy_return(k_eval, state)
        metrics = metrics_of(state, done_sum, done_count, eval_return, {k: v.mean() for k, v in losses.items()},
                             values.mean())
        return state._replace(iteration=state.iteration + 1), metrics

    def init(key: PRNGKey, hp: HParams) -> State:
        hp = as_float32(hp)
        k_env, k_model, k_run = jax.random.split(key, 3)
        obs, env_state = envs.batch_reset(env, env_params, k_env, cfg.num_envs)
        params = net.init(k_model)
        b = cfg.num_envs
        example = Step(obs, jnp.zeros((b,), jnp.int32), jnp.zeros((b,), jnp.float32), jnp.zeros((b,), jnp.bool_),
                       jnp.zeros((b,), jnp.bool_), jnp.zeros((b, num_actions), jnp.float32),
                       jnp.zeros((b,), jnp.float32))
        state = State(
            key=k_run, hparams=hp, env_state=env_state, obs=obs, episode_return=jnp.zeros((b,), jnp.float32),
            buffer=buffers.init(capacity, example), params=params, target_params=params,
            opt_state=ac_lib.adam_init(params), iteration=jnp.zeros((), jnp.int32),
            env_steps=jnp.zeros((), jnp.int32), warmup=None,
        )
        state, warmup = jax.lax.scan(lambda s, _: explore_iteration(s), state, None, length=cfg.warmup_iterations)
        return state._replace(warmup=warmup)

    def run(key: PRNGKey, hp: HParams) -> Tuple[State, Metrics]:
        return run_after_warmup(init, step, cfg.num_iterations - cfg.warmup_iterations, key, hp)

    return Train(cfg, init, step, run, net, spec, greedy_policy)
