"""`jaxmbrl diagnose RUN`: how the learned model's error compounds over the horizon."""
from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxmbrl import models
from jaxmbrl.run import _config, _files, _runner
from jaxmbrl.run._config import UsageError


def load_state(run_dir: str):
    """(algo module, config, train, state restored from the run's latest checkpoint)."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        raise UsageError(f"{run_dir} is not a jaxmbrl run folder (no config.json).")
    meta = _files.read_meta(path)
    algo_name = meta["algorithm"]
    algo, config, _ = _config.resolve(algo_name, overrides=meta["config"])
    points = [config.hparams()._replace(**p) for p in meta["points"]]
    train = algo.make_train(config)
    batch = len(points) * meta["seeds"]
    keys = _runner.batch_keys(meta["seed"], meta["seeds"], len(points))
    hp = _runner.batch_hparams(points, meta["seeds"])
    template = jax.eval_shape(jax.vmap(train.init), keys, hp)
    pad = -(-batch // len(jax.local_devices())) * len(jax.local_devices())
    template = jax.tree.map(lambda x: jax.ShapeDtypeStruct((pad,) + x.shape[1:], x.dtype), template)
    from jaxmbrl.run import _checkpoint

    try:
        step, state = _checkpoint.restore(os.path.join(run_dir, "checkpoints"), template)
    except _checkpoint.CheckpointError as err:
        raise UsageError(str(err)) from None
    return algo_name, config, train, state, meta


def open_loop_error(model, model_state, key, transitions, horizon: int):
    """k-step open-loop error of any `models.Model`, k = 1..horizon.

    From every start t, `model.step` rolls the logged actions forward from the logged
    observation t (all starts at once, one batched step per k; predictions are samples,
    as the planners see them) and is compared with the logged observation t + k.
    Starts whose k steps would cross an episode end are left out.

    Args:
      transitions: consecutive transitions of one env, in time order [N, ...].
    Returns:
      [K] mean squared error per observation dim, each dim standardised by the
      observations' own std (1.0 is as bad as predicting the mean).
    """
    n = transitions.reward.shape[0]
    starts = jnp.arange(n - horizon + 1)
    obs_std = jnp.maximum(transitions.obs.reshape(n, -1).std(0), 1e-6)
    ends = (transitions.terminated | transitions.truncated).astype(jnp.int32)

    def step(carry, j):
        obs, crossed = carry
        nxt, _, _ = model.step(jax.random.fold_in(key, j), model_state, obs, transitions.action[starts + j])
        err = (((nxt - transitions.next_obs[starts + j]).reshape(starts.shape[0], -1) / obs_std) ** 2).mean(1)
        valid = crossed == 0
        return (nxt.astype(obs.dtype), crossed + ends[starts + j]), (err, valid)

    init = (transitions.obs[starts], jnp.zeros(starts.shape, jnp.int32))
    _, (errs, valid) = jax.lax.scan(step, init, jnp.arange(horizon))
    return (errs * valid).sum(1) / jnp.maximum(valid.sum(1), 1)


def latent_open_loop_error(rssm, params, key, steps, horizon: int):
    """k-step open-loop error of an RSSM world model (Dreamer), k = 1..horizon.

    The stream is filtered once (`observe`); from every posterior s_t the prior is rolled
    forward with the logged actions a_t..a_{t+k-1} and decoded, and compared with o_{t+k}
    in the decoder's units (symlog for vectors). Starts that cross an episode start are
    left out.

    Args:
      steps: Dreamer `Step` records of one env in time order [N, ...].
    Returns:
      [K] mean squared error per observation dim, standardised as in `open_loop_error`.
    """
    n = steps.reward.shape[0]
    starts = jnp.arange(n - horizon)
    k_obs, k_img = jax.random.split(key)
    seen = models.observe(rssm, params, k_obs, steps.obs[None], steps.action[None], steps.is_first[None])
    post = jax.tree.map(lambda x: x[0, starts], seen.posterior)
    target = steps.obs.astype(jnp.float32)
    target = target if rssm.config.uses_cnn else models.symlog(target)
    flat = target.reshape(n, -1)
    std = jnp.maximum(flat.std(0), 1e-6)

    def step(carry, j):
        state, crossed = carry
        state, _ = models.img_step(rssm, params, jax.random.fold_in(k_img, j), state, steps.action[starts + j])
        crossed = crossed + steps.is_first[starts + j + 1].astype(jnp.int32)
        recon = models.decode(rssm, params, models.features(state)).reshape(starts.shape[0], -1)
        err = (((recon - flat[starts + j + 1]) / std) ** 2).mean(1)
        return (state, crossed), (err, crossed == 0)

    init = (post, jnp.zeros(starts.shape, jnp.int32))
    _, (errs, valid) = jax.lax.scan(step, init, jnp.arange(horizon))
    return (errs * valid).sum(1) / jnp.maximum(valid.sum(1), 1)


def reward_open_loop_error(net, params, steps, horizon: int):
    """k-step open-loop reward error of MuZero's latent model, k = 1..horizon.

    MuZero's model predicts no observations, so its rewards are what can be checked: from
    every start t the representation encodes o_t, the dynamics unroll the logged actions
    a_t..a_{t+k-1}, and the k-th predicted reward is compared with the logged r_{t+k-1}.
    Starts whose k steps would cross an episode end are left out.

    Args:
      steps: MuZero `Step` records of one env in time order [N, ...].
    Returns:
      [K] mean squared reward error, divided by the logged rewards' variance (1.0 is as
      bad as predicting their mean; a constant reward counts variance 1).
    """
    n = steps.reward.shape[0]
    starts = jnp.arange(n - horizon + 1)
    var = steps.reward.var()
    var = jnp.where(var > 1e-8, var, 1.0)
    ends = (steps.terminated | steps.truncated).astype(jnp.int32)

    def step(carry, j):
        latent, crossed = carry
        latent, reward = net.dynamics(params, latent, steps.action[starts + j])
        err = (net.value(reward) - steps.reward[starts + j]) ** 2 / var
        return (latent, crossed + ends[starts + j]), (err, crossed == 0)

    init = (net.represent(params, steps.obs[starts]), jnp.zeros(starts.shape, jnp.int32))
    _, (errs, valid) = jax.lax.scan(step, init, jnp.arange(horizon))
    return (errs * valid).sum(1) / jnp.maximum(valid.sum(1), 1)


def diagnose(run_dir: str, horizon: int = 15, member: int = 0, png: str | None = None):
    """k-step open-loop error of the learned model of batch member `member`, k = 1..horizon.

    Works for every algorithm that learns a model: a `models.Model` (`train.model`:
    PETS, MBPO, deep Dyna) or an RSSM (`train.rssm`: Dreamer) against observations, and
    MuZero's latent model (`models.MuZeroModel`) against rewards. Uses that member's
    replay (the first env's stream). Returns `(errors [K], png path)`.
    """
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
        raise UsageError(f"--horizon must be an integer >= 1, got {horizon!r}.")
    algo_name, config, train, state, meta = load_state(run_dir)
    pick = lambda tree: jax.tree.map(lambda x: x[member], tree)
    key = jax.random.PRNGKey(0)
    rssm = getattr(train, "rssm", None)
    model = getattr(train, "model", None)
    if rssm is not None:
        buffer = pick(state.buffer)
        size = int(buffer.size)
        data = jax.tree.map(lambda x: x[:size, 0], buffer.data)  # [C, B, ...]: env 0's stream
        _check_length(data.reward.shape[0], horizon + 1)
        errors = jax.jit(lambda p, d: latent_open_loop_error(rssm, p, key, d, horizon))(pick(state.model_params), data)
        what = "open-loop model error"
    elif isinstance(model, models.MuZeroModel):
        buffer = pick(state.buffer)
        size = int(buffer.size)
        data = jax.tree.map(lambda x: x[:size, 0], buffer.data)  # [C, B, ...]: env 0's stream
        _check_length(data.reward.shape[0], horizon)
        errors = jax.jit(lambda p, d: reward_open_loop_error(model, p, d, horizon))(pick(state.params), data)
        what = "open-loop reward error (MuZero predicts no observations)"
    elif model is not None and getattr(state, "model", None) is not None:
        mstate, buffer = pick(state.model), pick(state.buffer)
        size = int(buffer.size)
        num_envs = getattr(config, "num_envs", 1)
        # Rows are stored time-major with the envs interleaved: keep env 0's stream.
        data = jax.tree.map(lambda x: x[:size].reshape((size // num_envs, num_envs) + x.shape[1:])[:, 0], buffer.data)
        _check_length(data.reward.shape[0], horizon)
        errors = jax.jit(lambda m, d: open_loop_error(model, m, key, d, horizon))(mstate, data)
        what = "open-loop model error"
    else:
        raise UsageError(f"diagnose needs a learned dynamics model; this {algo_name} run has none "
                         f"(tabular Dyna and max_planning_steps=0 learn no network model).")
    errors = np.asarray(errors)
    from jaxmbrl.run import _plots

    png = _plots.png_path(png, "model_error.png") if png else os.path.join(run_dir, "model_error.png")
    ylabel = "reward MSE / reward variance" if isinstance(model, models.MuZeroModel) else \
        "MSE per obs dim (standardised)"
    _plot(errors, png, f"{algo_name} on {config.env_id}: {what}", ylabel)
    _files.write_json(os.path.join(run_dir, "model_error.json"), {"k": list(range(1, horizon + 1)), "mse": errors.tolist()})
    return errors, png


def _check_length(available: int, needed: int) -> None:
    if available <= needed:
        raise UsageError(f"the run's replay holds {available} steps; use a --horizon below {available - 1}.")


def _plot(errors, png, title, ylabel="MSE per obs dim (standardised)"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(np.arange(1, len(errors) + 1), errors, marker="o")
    ax.set_xlabel("k (open-loop steps)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
