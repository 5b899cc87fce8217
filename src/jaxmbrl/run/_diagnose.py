"""`jaxmbrl diagnose RUN`: how the learned model's error compounds over the horizon."""
from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
import numpy as np

from jaxmbrl import models
from jaxmbrl.run import _config, _runner
from jaxmbrl.run._config import UsageError


def load_state(run_dir: str):
    """(algo module, config, train, state restored from the run's latest checkpoint)."""
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        raise UsageError(f"{run_dir} is not a jaxmbrl run folder (no config.json).")
    with open(path) as f:
        meta = json.load(f)
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


def diagnose(run_dir: str, horizon: int = 15, member: int = 0, png: str | None = None):
    """k-step open-loop error of the model of batch member `member`, k = 1..horizon.

    Uses the transitions in that member's replay buffer (the first env's stream).
    Returns `(errors [K], png path)`.
    """
    algo_name, config, train, state, meta = load_state(run_dir)
    ens = getattr(train, "ensemble", None)
    if ens is None or not hasattr(state, "model") or not hasattr(state, "buffer"):
        raise UsageError(f"diagnose needs a learned dynamics model; {algo_name} runs have none.")
    pick = lambda tree: jax.tree.map(lambda x: x[member], tree)
    mstate, buffer = pick(state.model), pick(state.buffer)
    size = int(buffer.size)
    num_envs = getattr(config, "num_envs", 1)
    # Rows are stored time-major with the envs interleaved: keep env 0's stream.
    data = jax.tree.map(lambda x: x[:size].reshape((size // num_envs, num_envs) + x.shape[1:])[:, 0], buffer.data)
    if data.reward.shape[0] <= horizon:
        raise UsageError(f"the run's buffer holds {data.reward.shape[0]} steps; use --horizon below that.")
    errors = np.asarray(jax.jit(lambda m, d: models.open_loop_error(ens, m, d, horizon))(mstate, data))
    png = png or os.path.join(run_dir, "model_error.png")
    _plot(errors, png, f"{algo_name} on {config.env_id}: open-loop model error")
    with open(os.path.join(run_dir, "model_error.json"), "w") as f:
        json.dump({"k": list(range(1, horizon + 1)), "mse": errors.tolist()}, f)
    return errors, png


def _plot(errors, png, title):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(np.arange(1, len(errors) + 1), errors, marker="o")
    ax.set_xlabel("k (open-loop steps)")
    ax.set_ylabel("MSE per obs dim (standardised)")
    ax.set_title(title)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
