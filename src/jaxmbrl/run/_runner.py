"""The runner: a chunked compiled loop with progress, logs, checkpoints and plots.

`train.step` (one iteration) is vmapped over the batch of seeds x sweep points and
scanned over a chunk of iterations inside one jitted call; Python only loops over
chunks, logging each chunk's metrics ([chunk, batch] scalars: nothing is stacked per
env step) and checkpointing. The batch axis is sharded over every local device.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import signal
import sys
import time
from typing import Any, Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxmbrl.run import _checkpoint, _config
from jaxmbrl.run._config import UsageError


@dataclasses.dataclass
class RunOptions:
    seeds: int = 1
    seed: int = 0
    chunk: int = 1  # iterations per compiled call
    checkpoint_every: int = 1  # in chunks; 0 disables
    resume: bool = False
    progress: bool = True
    tensorboard: bool = False
    stop_after_chunks: Optional[int] = None  # stop early (as if interrupted), for tests


@dataclasses.dataclass
class RunResult:
    out_dir: str
    state: Any
    rows: List[Dict[str, Any]]
    summary: Dict[str, Any]
    completed: bool


def batch_hparams(hparams_points: Sequence[Any], seeds: int):
    """[points] HParams -> one HParams of float32 arrays [points * seeds] (point-major)."""
    stacked = jax.tree.map(lambda *xs: np.asarray(xs, np.float32), *hparams_points)
    return jax.tree.map(lambda a: np.repeat(a, seeds), stacked)


def batch_keys(seed: int, seeds: int, points: int):
    """The same `seeds` keys for every point (common random numbers across points)."""
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(seed), seeds))
    return np.tile(keys, (points, 1))


def _shard(tree, batch: int):
    """Pads the batch to a multiple of the local devices and shards it over them."""
    devices = jax.local_devices()
    n = len(devices)
    padded = -(-batch // n) * n
    if padded != batch:
        tree = jax.tree.map(lambda a: np.concatenate([a, np.repeat(a[-1:], padded - batch, 0)]), tree)
    sharding = _batch_sharding(padded)
    return (jax.device_put(tree) if sharding is None else jax.device_put(tree, sharding)), padded


def _clean(value):
    value = float(value) if np.ndim(value) == 0 else value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return None
        if value.is_integer() and abs(value) < 2**31:
            return int(value)
    return value


def _rows(metrics: Dict[str, np.ndarray], points: int, seeds: int) -> List[Dict[str, Any]]:
    """[iters, batch] metrics -> one row per iteration and batch member."""
    iters = next(iter(metrics.values())).shape[0]
    rows = []
    for i in range(iters):
        for b in range(points * seeds):
            row = {"point": b // seeds, "seed": b % seeds}
            row.update({k: _clean(v[i, b]) for k, v in metrics.items()})
            rows.append(row)
    return rows


class _Logs:
    """metrics.jsonl and metrics.csv, appended per chunk."""

    def __init__(self, out_dir: str):
        self.jsonl = os.path.join(out_dir, "metrics.jsonl")
        self.csv = os.path.join(out_dir, "metrics.csv")

    def read(self) -> List[Dict[str, Any]]:
        if not os.path.exists(self.jsonl):
            return []
        with open(self.jsonl) as f:
            return [json.loads(line) for line in f if line.strip()]

    def rewrite(self, rows):
        for path in (self.jsonl, self.csv):
            if os.path.exists(path):
                os.replace(path, path + ".bak")
        self.append(rows)
        for path in (self.jsonl, self.csv):
            if os.path.exists(path + ".bak"):
                os.remove(path + ".bak")

    def append(self, rows):
        if not rows:
            return
        with open(self.jsonl, "a") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        new = not os.path.exists(self.csv)
        with open(self.csv, "a") as f:
            if new:
                f.write(",".join(rows[0]) + "\n")
            for row in rows:
                f.write(",".join("" if v is None else str(v) for v in row.values()) + "\n")


class _StopFlag:
    """SIGINT/SIGTERM end the run after the chunk in flight, with a checkpoint."""

    def __init__(self):
        self.requested = None
        self._previous = {}

    def __enter__(self):
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread
                pass
        return self

    def _handle(self, signum, frame):
        self.requested = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _warmup_metrics(state) -> Optional[Dict[str, np.ndarray]]:
    warmup = getattr(state, "warmup", None)
    if warmup is None:
        return None
    return {k: np.asarray(v).T for k, v in warmup._asdict().items()}  # [batch, w] -> [w, batch]


def _metric_dict(metrics) -> Dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in metrics._asdict().items()}


def run(algo_name: str, config, hparams_points: Sequence[Any], out_dir: str,
        options: RunOptions, point_labels: Optional[Sequence[str]] = None) -> RunResult:
    """Runs `len(hparams_points) x options.seeds` runs of one config as one program."""
    algo = _config.get_algorithm(algo_name)
    try:
        for hp in hparams_points:
            config.validate_hparams(hp)
        train = algo.make_train(config)
    except ValueError as err:
        raise UsageError(str(err).splitlines()[0]) from None
    points, seeds = len(hparams_points), options.seeds
    if seeds < 1 or options.chunk < 1:
        raise UsageError("--seeds and --chunk must be >= 1.")
    batch = points * seeds
    os.makedirs(out_dir, exist_ok=True)
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    meta = {
        "algorithm": algo_name,
        **_config.config_dict(config, hparams_points[0]),
        "points": [{k: float(v) for k, v in hp._asdict().items()} for hp in hparams_points],
        "point_labels": list(point_labels or []),
        "seeds": seeds,
        "seed": options.seed,
        "chunk": options.chunk,
        "versions": _config.versions(),
        "devices": [str(d) for d in jax.local_devices()],
    }
    config_path = os.path.join(out_dir, "config.json")
    logs = _Logs(out_dir)
    if options.resume:
        _check_resumable(config_path, meta, ckpt_dir)
    elif os.path.exists(logs.jsonl) or _checkpoint.latest_step(ckpt_dir) is not None:
        raise UsageError(f"{out_dir} already holds a run; pass --resume to continue it or choose another --out.")
    with open(config_path, "w") as f:
        json.dump(meta, f, indent=2)

    keys, padded = _shard(batch_keys(options.seed, seeds, points), batch)
    hp, _ = _shard(batch_hparams(hparams_points, seeds), batch)

    start = time.perf_counter()
    template = jax.eval_shape(jax.vmap(train.init), keys, hp)
    warm_template = getattr(template, "warmup", None)
    done_warmup = 0 if warm_template is None else jax.tree.leaves(warm_template)[0].shape[1]
    total_steps = config.num_iterations - done_warmup
    step_iters = 0
    rows: List[Dict[str, Any]] = []
    compile_s = 0.0
    if options.resume:
        # Restoring replaces init entirely, so a bad checkpoint fails before any compile.
        step_iters, state = _restore(ckpt_dir, template, _batch_sharding(padded))
        rows = [r for r in logs.read() if r["iteration"] < done_warmup + step_iters]
        logs.rewrite(rows)
    else:
        sharding = _batch_sharding(padded)
        init = jax.jit(jax.vmap(train.init), out_shardings=sharding).lower(keys, hp).compile()
        compile_s = time.perf_counter() - start
        state = init(keys, hp)
        warm = _warmup_metrics(state)
        if warm is not None:
            rows = _rows({k: v[:, :batch] for k, v in warm.items()}, points, seeds)
            logs.append(rows)
    tb = _tensorboard(out_dir) if options.tensorboard else None

    def make_chunk(length):
        def chunk(state):
            return jax.lax.scan(lambda s, _: jax.vmap(train.step)(s), state, None, length=length)
        t = time.perf_counter()
        # Every state leaf has the batch as its leading axis: keep it sharded there.
        sharding = _batch_sharding(padded)
        out_shardings = None if sharding is None else (sharding, None)
        compiled = jax.jit(chunk, in_shardings=sharding, out_shardings=out_shardings).lower(state).compile()
        return compiled, time.perf_counter() - t

    compiled = {}
    bar = _progress(options.progress, total=config.num_iterations, initial=done_warmup + step_iters,
                    desc=f"{algo_name} {getattr(config, 'env_id', '')}")
    steady_time, steady_env_steps, first_chunk_s = 0.0, 0, None
    stop_reason = None
    chunks_done = 0
    with _StopFlag() as stop:
        while step_iters < total_steps:
            length = min(options.chunk, total_steps - step_iters)
            if length not in compiled:
                compiled[length], seconds = make_chunk(length)
                compile_s += seconds
            before = _env_steps(state)
            t = time.perf_counter()
            state, metrics = compiled[length](state)
            metrics = jax.tree.map(np.asarray, metrics)
            elapsed = time.perf_counter() - t
            step_iters += length
            chunks_done += 1
            new_rows = _rows({k: v[:, :batch] for k, v in _metric_dict(metrics).items()}, points, seeds)
            rows += new_rows
            logs.append(new_rows)
            if tb is not None:
                _tb_write(tb, new_rows)
            env_delta = _env_steps(state) - before
            if first_chunk_s is None:
                first_chunk_s = elapsed
            else:
                steady_time += elapsed
                steady_env_steps += env_delta
            last = [r.get("episode_return") for r in new_rows[-batch:] if r.get("episode_return") is not None]
            bar.update(length)
            bar.set_postfix({"env_steps": int(_env_steps(state) // max(padded, 1)),
                             "steps/s": f"{env_delta / max(elapsed, 1e-9):.0f}",
                             "return": f"{np.mean(last):.1f}" if last else "n/a"})
            final = step_iters >= total_steps
            checkpoint_due = options.checkpoint_every and (chunks_done % options.checkpoint_every == 0 or final)
            stop_reason = stop.requested or (
                "stop_after_chunks" if options.stop_after_chunks and chunks_done >= options.stop_after_chunks and not final else None)
            if checkpoint_due or stop_reason:
                _checkpoint.save(ckpt_dir, step_iters, state)
            if stop_reason:
                break
    bar.close()
    wall = time.perf_counter() - start
    summary = {
        "completed": stop_reason is None,
        "iterations": done_warmup + step_iters,
        "compile_s": round(compile_s, 2),
        "wall_s": round(wall, 2),
        "first_chunk_s": None if first_chunk_s is None else round(first_chunk_s, 3),
        "steady_env_steps_per_s": round(steady_env_steps / steady_time, 1) if steady_time > 0 else None,
        "batch": batch,
        "devices": len(jax.local_devices()),
    }
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f, indent=2)
    try:
        from jaxmbrl.run import _plots

        _plots.learning_curves([out_dir], os.path.join(out_dir, "learning_curve.png"))
    except ImportError:
        pass
    return RunResult(out_dir, state, rows, summary, stop_reason is None)


def _env_steps(state) -> int:
    steps = getattr(state, "env_steps", None)
    return 0 if steps is None else int(np.asarray(steps).sum())


def _check_resumable(config_path: str, meta: Dict[str, Any], ckpt_dir: str) -> None:
    if not os.path.exists(config_path):
        raise UsageError(f"nothing to resume: {config_path} does not exist.")
    with open(config_path) as f:
        try:
            old = json.load(f)
        except json.JSONDecodeError:
            raise UsageError(f"{config_path} is corrupt; cannot check that the resumed config matches.") from None
    diffs = []
    for section in ("config", "hparams"):
        for k in sorted(set(old.get(section, {})) | set(meta[section])):
            if old.get(section, {}).get(k) != meta[section].get(k):
                diffs.append(f"{k} ({old.get(section, {}).get(k)!r} -> {meta[section].get(k)!r})")
    for k in ("algorithm", "points", "seeds", "seed", "chunk"):
        if old.get(k) != meta.get(k):
            diffs.append(f"{k} ({old.get(k)!r} -> {meta.get(k)!r})")
    if diffs:
        raise UsageError(f"cannot resume with a different config; fields that differ: {', '.join(diffs)}.")
    if _checkpoint.latest_step(ckpt_dir) is None:
        raise UsageError(f"nothing to resume: no checkpoint in {ckpt_dir}.")


def _batch_sharding(padded: int):
    devices = jax.local_devices()
    if len(devices) == 1:
        return None
    mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))


def _restore(ckpt_dir: str, template, sharding):
    try:
        step, state = _checkpoint.restore(ckpt_dir, template)
    except _checkpoint.CheckpointError as err:
        raise UsageError(f"{err}; remove that folder to fall back to an earlier checkpoint, or start a new --out.") from None
    # The same placement over devices as a fresh state.
    return step, jax.device_put(state, sharding) if sharding is not None else jax.device_put(state)


def _progress(enabled: bool, **kwargs):
    from tqdm import tqdm

    return tqdm(disable=not enabled, unit="iter", file=sys.stderr, **kwargs)


def _tensorboard(out_dir: str):
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise UsageError("--tensorboard needs tensorboardX: pip install 'jaxmbrl[tensorboard]'.") from None
    return SummaryWriter(os.path.join(out_dir, "tensorboard"))


def _tb_write(writer, rows):
    for row in rows:
        tag = f"p{row['point']}_s{row['seed']}"
        for k, v in row.items():
            if k not in ("point", "seed", "iteration") and isinstance(v, (int, float)):
                writer.add_scalar(f"{k}/{tag}", v, row["iteration"])
    writer.flush()
