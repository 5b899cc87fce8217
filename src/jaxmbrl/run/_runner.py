"""The runner: a chunked compiled loop with progress, logs, checkpoints and plots.

`train.step` (one iteration) is vmapped over the batch of seeds x sweep points and
scanned over a chunk of iterations inside one jitted call; Python only loops over
chunks, logging each chunk's metrics ([chunk, batch] scalars: nothing is stacked per
env step) and checkpointing. The batch axis is sharded over every local device.

What a run promises (docs/RELIABILITY.md): one writer per folder (`_files.RunLock`),
files written atomically, checkpoints verified on resume, and a run that turns
non-finite stops with status "diverged" (exit 3) instead of logging garbage.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxmbrl.run import _checkpoint, _config, _distributed, _files, _trackers
from jaxmbrl.run._config import UsageError

# Exit statuses of `jaxmbrl train`/`sweep` (docs/RELIABILITY.md).
EXIT_OK, EXIT_USAGE, EXIT_DIVERGED, EXIT_INTERRUPTED = 0, 2, 3, 130


@dataclasses.dataclass
class RunOptions:
    """How `run` runs a config: seeds, chunking, checkpoints, resume, progress and trackers."""

    seeds: int = 1
    seed: int = 0
    chunk: int = 1  # iterations per compiled call
    checkpoint_every: int = 1  # in chunks; 0 disables
    resume: bool = False
    progress: bool = True
    tensorboard: bool = False
    wandb: Optional[str] = None  # a W&B project: also log to Weights & Biases
    plot_every_s: float = 60.0  # redraw learning_curve.png during the run at most this often; <0: only at the end
    stop_after_chunks: Optional[int] = None  # stop early (as if interrupted), for tests


@dataclasses.dataclass
class RunResult:
    """What `run` returns: the folder, the final state, every logged row and summary.json's contents."""

    out_dir: str
    state: Any
    rows: List[Dict[str, Any]]
    summary: Dict[str, Any]
    completed: bool

    @property
    def status(self) -> str:
        """One of "completed", "interrupted" and "diverged"."""
        return self.summary.get("status", "completed" if self.completed else "interrupted")


def batch_hparams(hparams_points: Sequence[Any], seeds: int):
    """[points] HParams -> one HParams of float32 arrays [points * seeds] (point-major)."""
    stacked = jax.tree.map(lambda *xs: np.asarray(xs, np.float32), *hparams_points)
    return jax.tree.map(lambda a: np.repeat(a, seeds), stacked)


def batch_keys(seed: int, seeds: int, points: int):
    """The same `seeds` keys for every point (common random numbers across points)."""
    keys = np.asarray(jax.random.split(jax.random.PRNGKey(seed), seeds))
    return np.tile(keys, (points, 1))


def _padded(batch: int) -> int:
    n = jax.device_count()  # every process's devices
    return -(-batch // n) * n


def _shard(tree, batch: int):
    """Pads the batch to a multiple of the devices and shards it over them."""
    padded = _padded(batch)
    if padded != batch:
        tree = jax.tree.map(lambda a: np.concatenate([a, np.repeat(a[-1:], padded - batch, 0)]), tree)
    return _put(tree, _batch_sharding(padded)), padded


def _put(tree, sharding):
    """Host arrays (the same global value on every process) onto the batch sharding."""
    if sharding is None:
        return jax.device_put(tree)
    def put(a):
        host = np.asarray(a)  # once per leaf, not once per shard
        # Each process places only the shards of its own devices.
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])

    return jax.tree.map(put, tree)


def _rows(metrics: Dict[str, np.ndarray], points: int, seeds: int, diverged=frozenset()) -> List[Dict[str, Any]]:
    """[iters, batch] metrics -> one row per iteration and batch member.

    NaN is null ("not measured", as the algorithms' metrics use it) except in the rows of
    members in `diverged`, where a NaN that is not an episode statistic (those are NaN
    when no episode ended) is the string "nan"; infinities are "inf"/"-inf".
    """
    iters = next(iter(metrics.values())).shape[0]
    rows = []
    for i in range(iters):
        for b in range(points * seeds):
            row = {"point": b // seeds, "seed": b % seeds}
            row.update({k: _files.encode_value(float(v[i, b]), b in diverged and not _is_episode_stat(k))
                        for k, v in metrics.items()})
            rows.append(row)
    return rows


def _is_episode_stat(name: str) -> bool:
    return "episode" in name or name == "eval_return"


class _Logs:
    """metrics.jsonl and metrics.csv: one durable append per chunk, whole rewrites atomic."""

    def __init__(self, out_dir: str):
        self.jsonl = os.path.join(out_dir, "metrics.jsonl")
        self.csv = os.path.join(out_dir, "metrics.csv")

    def read(self) -> List[Dict[str, Any]]:
        return _files.read_jsonl(self.jsonl) if os.path.exists(self.jsonl) else []

    @staticmethod
    def _jsonl_text(rows) -> str:
        import json

        return "".join(json.dumps(row) + "\n" for row in rows)

    @staticmethod
    def _csv_text(rows, header: bool) -> str:
        head = ",".join(rows[0]) + "\n" if header and rows else ""
        return head + "".join(",".join("" if v is None else str(v) for v in row.values()) + "\n" for row in rows)

    def rewrite(self, rows):
        _files.write_atomic(self.jsonl, self._jsonl_text(rows))
        _files.write_atomic(self.csv, self._csv_text(rows, header=True))

    def append(self, rows):
        if not rows:
            return
        header = not os.path.exists(self.csv) or os.path.getsize(self.csv) == 0
        _files.append_durably(self.jsonl, self._jsonl_text(rows))
        _files.append_durably(self.csv, self._csv_text(rows, header))

    def clear(self):
        for path in (self.jsonl, self.csv):
            if os.path.exists(path):
                os.remove(path)


class _StopFlag:
    """SIGINT/SIGTERM end the run after the chunk in flight, with a checkpoint; a second
    signal kills the process at once (the default action), for a chunk that takes too long."""

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
        for sig in self._previous:
            signal.signal(sig, signal.SIG_DFL)
        _files.note(f"{self.requested}: stopping after this chunk with a checkpoint (again to force an exit now).")

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _warmup_metrics(state) -> Optional[Dict[str, np.ndarray]]:
    warmup = getattr(state, "warmup", None)
    if warmup is None:
        return None
    warmup = _distributed.gather(warmup)
    return {k: np.asarray(v).T for k, v in warmup._asdict().items()}  # [batch, w] -> [w, batch]


def _metric_dict(metrics) -> Dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in metrics._asdict().items()}


# ---------------------------------------------------------------------------------------
# Divergence


def _checked_leaves(state) -> Tuple[List[str], List[int]]:
    """Names and indices of the float leaves a finite run keeps finite.

    `warmup` holds metrics, where NaN means "not measured", so it is left out.
    """
    names, indices = [], []
    for i, (path, leaf) in enumerate(jax.tree_util.tree_flatten_with_path(state)[0]):
        if any(getattr(p, "name", None) == "warmup" for p in path):
            continue
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            names.append(jax.tree_util.keystr(path).lstrip("."))
            indices.append(i)
    return names, indices


def _nonfinite_flags(state, indices) -> jax.Array:
    """[checked leaves, batch] bool: which leaves of which member hold a NaN or inf."""
    leaves = jax.tree.leaves(state)
    if not indices:
        return jnp.zeros((0, leaves[0].shape[0]), bool)
    return jnp.stack([~jnp.isfinite(leaves[i].reshape(leaves[i].shape[0], -1)).all(1) for i in indices])


def chunk_program(train, length: int, checked_indices: Sequence[int]):
    """The function a run compiles: `length` iterations of the vmapped step.

    state -> (state, Metrics [length, batch], non-finite flags [checked leaves, batch]).
    The tests build their runs from it too, so a test and a CLI run of one config share
    one compiled program through the persistent cache.
    """
    vstep = jax.vmap(train.step)

    def chunk(state):
        state, metrics = jax.lax.scan(lambda s, _: vstep(s), state, None, length=length)
        # Computed in the program, so checking for divergence costs one small transfer.
        return state, metrics, _nonfinite_flags(state, checked_indices)
    return chunk


def _is_loss(name: str) -> bool:
    return "loss" in name or "mse" in name or name in ("kl", "td_error")


def _divergence(flags: np.ndarray, names: List[str], metrics: Dict[str, np.ndarray], batch: int):
    """(diverged members, (member, iteration or None, quantity)) of one chunk, or (set(), None).

    Losses may be NaN by design (not fitted yet), so only an infinite loss counts; a NaN
    born of divergence shows in the state's parameters anyway.
    """
    first = None
    members = set()
    for name, values in metrics.items():
        if not _is_loss(name):
            continue
        hits = np.argwhere(np.isinf(values[:, :batch]))
        for i, b in hits:
            members.add(int(b))
            it = int(metrics["iteration"][i, b]) if "iteration" in metrics else None
            if first is None or (it is not None and first[1] is not None and it < first[1]):
                first = (int(b), it, f"{name} = {values[i, b]}")
    bad = np.asarray(flags)[:, :batch]
    for leaf, b in np.argwhere(bad):
        members.add(int(b))
        if first is None:
            first = (int(b), None, f"state {names[leaf]} is not finite")
    return members, first


def _divergence_message(first, seeds: int, labels: Sequence[str], last_iteration: int, more: int,
                        kept: Optional[int]) -> str:
    member, iteration, quantity = first
    point, seed = divmod(member, seeds)
    where = f"point {point}" + (f" ({labels[point]})" if point < len(labels) and labels[point] else "")
    when = f"iteration {iteration}" if iteration is not None else f"iteration {last_iteration} (end of the chunk)"
    also = f"; {more} more run(s) too" if more else ""
    kept_text = (f"checkpoints/{kept}, the last finite state, is kept" if kept is not None
                 else "no checkpoint was written before it")
    return _cut(f"diverged: seed {seed}, {where}, at {when}: {quantity}{also}; {kept_text}.")


def _cut(text: str, limit: int = 300) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------
# Memory


def device_memory() -> Optional[int]:
    """Bytes of memory of all local devices (host RAM for CPUs); None if unknown."""
    devices = jax.local_devices()
    try:
        stats = devices[0].memory_stats()
    except Exception:  # noqa: BLE001 - not every backend implements it
        stats = None
    if stats and stats.get("bytes_limit"):
        return int(stats["bytes_limit"]) * len(devices)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _gib(n: float) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size / 4:
            return f"{n / size:.1f} {unit}"
    return f"{n:.0f} bytes"


def _abstract_batch(hparams_points: Sequence[Any], batch: int):
    """The (keys, hparams) that `batch` runs (padded to the devices) take, as shapes only."""
    padded = _padded(batch)
    key = np.asarray(batch_keys(0, 1, 1))
    hp = batch_hparams(hparams_points[:1], 1)
    return (jax.ShapeDtypeStruct((padded,) + key.shape[1:], key.dtype),
            jax.tree.map(lambda a: jax.ShapeDtypeStruct((padded,), a.dtype), hp))


def _check_state_memory(template, batch: int) -> None:
    """Refuses, before any array is built, a batch whose state cannot fit in memory.

    `template` is the batch's state from `jax.eval_shape` (nothing is allocated); a chunk
    holds its input and its output state at once, hence twice the batch's state.
    """
    padded = _padded(batch)
    need = 2 * sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(template))
    per_member = need // (2 * padded)
    limit = device_memory()
    if limit is not None and need > limit:
        raise UsageError(f"{batch} run(s) need about {_gib(need)} for their state ({_gib(per_member)} each, "
                         f"twice over during a chunk) but the device(s) hold {_gib(limit)}: use fewer --seeds or "
                         f"sweep points, or a smaller config.")


def _check_program_memory(compiled, what: str) -> None:
    try:
        analysis = compiled.memory_analysis()
        need = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes + analysis.temp_size_in_bytes
                - analysis.alias_size_in_bytes)
    except Exception:  # noqa: BLE001 - not every backend reports it
        return
    limit = device_memory()
    if limit is not None and need > limit:
        raise UsageError(f"the compiled {what} needs about {_gib(need)} but the device(s) hold {_gib(limit)}: "
                         f"use fewer --seeds or sweep points, or a smaller config.")


class _OutOfMemory:
    """XLA's RESOURCE_EXHAUSTED (compiling or running) as one line."""

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is not None and not isinstance(err, UsageError) and "RESOURCE_EXHAUSTED" in str(err):
            raise UsageError("out of device memory (XLA RESOURCE_EXHAUSTED): use fewer --seeds or sweep points, "
                             "or a smaller config.") from None
        return False


# ---------------------------------------------------------------------------------------
# The run


def _make_train(algo, config, hparams_points):
    try:
        for hp in hparams_points:
            config.validate_hparams(hp)
        return algo.make_train(config)
    except ValueError as err:
        raise UsageError(_cut(str(err).splitlines()[0])) from None
    except RuntimeError as err:
        if str(err).startswith("Could not build"):  # e.g. an env that needs the network
            raise UsageError(_cut(str(err).splitlines()[0])) from None
        raise


def run(algo_name: str, config, hparams_points: Sequence[Any], out_dir: str,
        options: RunOptions, point_labels: Optional[Sequence[str]] = None) -> RunResult:
    """Runs `len(hparams_points) x options.seeds` runs of one config as one program.

    Everything the user can get wrong is checked (UsageError) before the run folder is
    written; the folder is then locked against a second writer for the whole run.
    A run that turns non-finite returns with `status == "diverged"`.
    """
    algo = _config.get_algorithm(algo_name)
    train = _make_train(algo, config, hparams_points)
    points, seeds = len(hparams_points), options.seeds
    if seeds < 1 or options.chunk < 1:
        raise UsageError("--seeds and --chunk must be >= 1.")
    _trackers.require(options.tensorboard, options.wandb)
    # One vmapped init, traced once: its shapes here, the template and the compile below
    # reuse the trace (jit caches it per function object).
    vinit, t = jax.vmap(train.init), time.perf_counter()
    template = jax.eval_shape(vinit, *_abstract_batch(hparams_points, points * seeds))
    trace_s = time.perf_counter() - t  # counted as compile time: init's compile reuses it
    _check_state_memory(template, points * seeds)
    meta = {
        "algorithm": algo_name,
        **_config.config_dict(config, hparams_points[0]),
        "points": [{k: float(v) for k, v in hp._asdict().items()} for hp in hparams_points],
        "point_labels": list(point_labels or []),
        "seeds": seeds,
        "seed": options.seed,
        "chunk": options.chunk,
        "versions": _config.versions(),
        "devices": [str(d) for d in jax.devices()],
        "processes": _distributed.num_processes(),
    }
    exists = _files.check_out_dir(out_dir)
    if options.resume and not exists:
        raise UsageError(f"nothing to resume: {out_dir} does not exist.")
    # Only process 0 writes the folder (and holds its lock); the others read checkpoints.
    lock = _files.RunLock(out_dir) if _distributed.is_primary() else contextlib.nullcontext()
    with lock, _OutOfMemory():
        return _run_locked(algo_name, config, train, (vinit, template, trace_s), hparams_points, out_dir, options, meta)


def _agreed_folder(out_dir: str, meta: Dict[str, Any], options: RunOptions) -> bool:
    """`_prepare_folder` on process 0 (the folder's one writer); its answer on every process."""
    if _distributed.num_processes() == 1:
        return _prepare_folder(out_dir, meta, options)
    if not _distributed.is_primary():
        answer = _distributed.agree(0)
        if answer < 0:
            raise UsageError("process 0 refused the run folder (its error says why).")
        return bool(answer)
    try:
        resuming = _prepare_folder(out_dir, meta, options)
    except UsageError:
        _distributed.agree(-1)
        raise
    return bool(_distributed.agree(int(resuming)))


def _prepare_folder(out_dir: str, meta: Dict[str, Any], options: RunOptions) -> bool:
    """Checks the folder against what is asked (under the lock); returns whether to resume."""
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    config_path = os.path.join(out_dir, "config.json")
    logs = _Logs(out_dir)
    steps = _checkpoint.steps(ckpt_dir)
    # A step without its checksum is a save that was killed: it does not count.
    has_checkpoint = any(os.path.exists(os.path.join(ckpt_dir, str(s), _checkpoint.CHECKSUM_NAME)) for s in steps)
    if not options.resume:
        if os.path.exists(logs.jsonl) or steps:
            hint = "" if has_checkpoint else " (it has no checkpoint: --resume starts it afresh)"
            raise UsageError(f"{out_dir} already holds a run; pass --resume to continue it{hint} or choose another --out.")
        return False
    if os.path.lexists(config_path):
        _check_same_config(config_path, meta)
    elif has_checkpoint:
        raise UsageError(f"{config_path} is missing; cannot check that the resumed config matches.")
    if not has_checkpoint:
        _files.note(f"{out_dir} has no checkpoint yet: starting it afresh.")
        for step in steps:
            _set_aside(out_dir, step)
        logs.clear()
        if os.path.exists(os.path.join(out_dir, "summary.json")):
            os.remove(os.path.join(out_dir, "summary.json"))
        return False
    return True


def _run_locked(algo_name, config, train, traced, hparams_points, out_dir, options, meta) -> RunResult:
    points, seeds = len(hparams_points), options.seeds
    batch = points * seeds
    labels = meta["point_labels"]
    ckpt_dir = os.path.join(out_dir, "checkpoints")
    logs = _Logs(out_dir)
    primary = _distributed.is_primary()
    resuming = _agreed_folder(out_dir, meta, options)
    fingerprint = _checkpoint.config_hash(meta)

    keys, padded = _shard(batch_keys(options.seed, seeds, points), batch)
    hp, _ = _shard(batch_hparams(hparams_points, seeds), batch)

    vinit, template, trace_s = traced
    start = time.perf_counter() - trace_s
    checked_names, checked_indices = _checked_leaves(template)
    warm_template = getattr(template, "warmup", None)
    done_warmup = 0 if warm_template is None else jax.tree.leaves(warm_template)[0].shape[1]
    total_steps = config.num_iterations - done_warmup
    step_iters = 0
    rows: List[Dict[str, Any]] = []
    compile_s = 0.0
    def make_chunk(length, state):
        chunk = chunk_program(train, length, checked_indices)
        t = time.perf_counter()
        # Every state leaf has the batch as its leading axis: keep it sharded there.
        sharding = _batch_sharding(padded)
        out_shardings = None if sharding is None else (sharding, None, None)
        compiled = jax.jit(chunk, in_shardings=sharding, out_shardings=out_shardings).lower(state).compile()
        _check_program_memory(compiled, f"chunk of {length} iteration(s)")
        return compiled, time.perf_counter() - t

    def chunk_lengths(done):
        remaining = total_steps - done
        full = min(options.chunk, remaining)
        return [n for n in {full, remaining % full if full else 0} if n > 0]

    compiled = {}
    if resuming:
        # Restoring replaces init entirely, so a bad checkpoint fails before any compile.
        step_iters, state, rejected = _restore(ckpt_dir, template, _batch_sharding(padded), fingerprint)
        if primary:
            rows = _rows_to_keep(logs, done_warmup + step_iters, batch, step_iters)
            for step, why in rejected:
                _files.warn(f"{why}; resuming from step {step_iters} instead.")
                _set_aside(out_dir, step)
            logs.rewrite(rows)
    else:
        sharding = _batch_sharding(padded)
        init = jax.jit(vinit, out_shardings=sharding).lower(keys, hp).compile()
        _check_program_memory(init, "init")
        # Every program is compiled (and its memory checked) against the abstract state
        # before the folder is written, so a config that cannot run leaves nothing behind.
        for length in chunk_lengths(0):
            compiled[length], _ = make_chunk(length, template)
        compile_s = time.perf_counter() - start
        if primary:
            _files.write_json(os.path.join(out_dir, "config.json"), meta)
        state = init(keys, hp)
        warm = _warmup_metrics(state)
        if warm is not None:
            rows = _rows({k: v[:, :batch] for k, v in warm.items()}, points, seeds)
            if primary:
                logs.append(rows)
    trackers = _trackers.open_trackers(out_dir, options.tensorboard, options.wandb, meta, resuming) if primary else []
    if not resuming:
        for tracker in trackers:
            tracker.log(rows)  # the warm-up iterations

    bar = _progress(options.progress and primary, total=config.num_iterations, initial=done_warmup + step_iters,
                    desc=f"{algo_name} {getattr(config, 'env_id', '')}")
    steady_time, steady_env_steps, first_chunk_s = 0.0, 0, None
    stop_reason = None
    divergence = None
    last_saved = step_iters if resuming else None
    chunks_done = 0
    last_plot = time.perf_counter()
    with _StopFlag() as stop:
        while step_iters < total_steps:
            length = min(options.chunk, total_steps - step_iters)
            if length not in compiled:
                compiled[length], seconds = make_chunk(length, state)
                compile_s += seconds
            before = _env_steps(state)
            t = time.perf_counter()
            new_state, metrics, flags = compiled[length](state)
            metrics, flags = _metric_dict(_distributed.gather(metrics)), _distributed.gather(flags)
            elapsed = time.perf_counter() - t
            diverged, first = _divergence(flags, checked_names, metrics, batch)
            new_rows = _rows({k: v[:, :batch] for k, v in metrics.items()}, points, seeds, diverged)
            rows += new_rows
            if primary:
                logs.append(new_rows)
            for tracker in trackers:
                tracker.log(new_rows)
            if first is not None:
                # The diverged state is not checkpointed: the last finite one stays.
                divergence = _divergence_message(first, seeds, labels, done_warmup + step_iters + length - 1,
                                                 len(diverged) - 1, last_saved)
                break
            state = new_state
            step_iters += length
            chunks_done += 1
            env_delta = _env_steps(state) - before
            if first_chunk_s is None:
                first_chunk_s = elapsed
            else:
                steady_time += elapsed
                steady_env_steps += env_delta
            last = [r.get("episode_return") for r in new_rows[-batch:] if isinstance(r.get("episode_return"), (int, float))]
            bar.update(length)
            bar.set_postfix({"env_steps": int(_env_steps(state) // max(padded, 1)),
                             "steps/s": f"{env_delta / max(elapsed, 1e-9):.0f}",
                             "return": f"{np.mean(last):.1f}" if last else "n/a"})
            final = step_iters >= total_steps
            checkpoint_due = options.checkpoint_every and (chunks_done % options.checkpoint_every == 0 or final)
            stop_reason = stop.requested or (
                "stop_after_chunks" if options.stop_after_chunks and chunks_done >= options.stop_after_chunks and not final else None)
            if _distributed.num_processes() > 1 and _distributed.any_process(bool(stop_reason)):
                stop_reason = stop_reason or "signal on another process"
            if checkpoint_due or stop_reason:
                host_state = _distributed.gather(state)
                if primary:
                    _checkpoint.save(ckpt_dir, step_iters, host_state, config=fingerprint)
                last_saved = step_iters
            if stop_reason:
                break
            # A long run's curve can be looked at while it runs (the file is replaced whole).
            if primary and not final and 0 <= options.plot_every_s <= time.perf_counter() - last_plot:
                _draw_curve(out_dir)
                last_plot = time.perf_counter()
    bar.close()
    for tracker in trackers:
        tracker.close()
    completed = divergence is None and step_iters >= total_steps  # a stop on the last chunk still finished
    status = "diverged" if divergence else ("completed" if completed else "interrupted")
    session = {
        "compile_s": round(compile_s, 2),
        "wall_s": round(time.perf_counter() - start, 2),
        "first_chunk_s": None if first_chunk_s is None else round(first_chunk_s, 3),
        "steady_env_steps_per_s": round(steady_env_steps / steady_time, 1) if steady_time > 0 else None,
    }
    summary = _summary(out_dir, resuming, session, status=status, completed=completed,
                       iterations=done_warmup + step_iters, batch=batch, devices=jax.device_count(),
                       error=divergence)
    if not primary:
        return RunResult(out_dir, state, rows, summary, completed)
    _files.write_json(os.path.join(out_dir, "summary.json"), summary)
    _draw_curve(out_dir)
    return RunResult(out_dir, state, rows, summary, completed)


def _draw_curve(out_dir: str) -> None:
    """learning_curve.png from metrics.jsonl (skipped without matplotlib or before any return)."""
    try:
        from jaxmbrl.run import _plots

        _plots.learning_curves([out_dir], os.path.join(out_dir, "learning_curve.png"))
    except (ImportError, UsageError):
        pass


def _summary(out_dir: str, resuming: bool, session: Dict[str, Any], **fields) -> Dict[str, Any]:
    """summary.json: the first session's timings stay; each resume's are listed under "resumes"."""
    path = os.path.join(out_dir, "summary.json")
    previous = None
    if resuming and os.path.exists(path):
        try:
            previous = _files.read_json_dict(path)
        except UsageError:
            previous = None
    if previous is None:
        out = {k: v for k, v in fields.items() if v is not None or k != "error"}
        out.update(session)
        return out
    out = {k: v for k, v in previous.items() if k not in ("status", "completed", "iterations", "error")}
    out.update({k: v for k, v in fields.items() if v is not None or k != "error"})
    out["resumes"] = list(previous.get("resumes", [])) + [session]
    return out


def _rows_to_keep(logs: _Logs, iterations: int, batch: int, step: int) -> List[Dict[str, Any]]:
    """The logged rows of the checkpointed iterations; refuses if some were lost."""
    rows = [r for r in logs.read() if isinstance(r.get("iteration"), int) and r["iteration"] < iterations]
    if len(rows) != iterations * batch:
        raise UsageError(f"{logs.jsonl} holds {len(rows)} rows for the {iterations} iterations of checkpoint {step} "
                         f"(expected {iterations * batch}): metrics were lost, and resuming would drop more; "
                         f"start a new --out.")
    return rows


def _set_aside(out_dir: str, step: int) -> None:
    """Moves a checkpoint that failed verification out of Orbax's folder (kept for a look)."""
    src = os.path.join(out_dir, "checkpoints", str(step))
    if not os.path.exists(src):
        return
    dst_root = os.path.join(out_dir, "checkpoints_rejected")
    os.makedirs(dst_root, exist_ok=True)
    dst = os.path.join(dst_root, str(step))
    n = 1
    while os.path.exists(dst):
        dst, n = os.path.join(dst_root, f"{step}.{n}"), n + 1
    shutil.move(src, dst)


def _env_steps(state) -> int:
    steps = getattr(state, "env_steps", None)
    return 0 if steps is None else int(np.asarray(_distributed.gather(steps)).sum())


def _check_same_config(config_path: str, meta: Dict[str, Any]) -> None:
    old = _files.read_meta(config_path)
    diffs = []
    for section in ("config", "hparams"):
        before, after = old.get(section) or {}, meta[section]
        if not isinstance(before, dict):
            raise UsageError(f"{config_path} was not written by jaxmbrl ({section!r} is not a mapping).")
        for k in sorted(set(before) | set(after)):
            if not _same(before.get(k), after.get(k)):
                diffs.append(f"{k} ({_files.short(before.get(k), 40)} -> {_files.short(after.get(k), 40)})")
    before, now = old.get("processes", 1), meta.get("processes", 1)
    if before != now:
        raise UsageError(f"this run was started with {before} process(es) and is resumed with {now}: "
                         f"resume it with --num-processes {before}, or start a new --out.")
    for k in ("algorithm", "points", "seeds", "seed", "chunk"):
        if not _same(old.get(k), meta.get(k)):
            diffs.append(f"{k} ({_files.short(old.get(k), 40)} -> {_files.short(meta.get(k), 40)})")
    if diffs:
        raise UsageError(_cut(f"cannot resume with a different config; fields that differ: {', '.join(diffs)}."))


def _same(a, b) -> bool:
    """Equality where NaN equals NaN (a NaN field must not block its own resume)."""
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return a == b


def _batch_sharding(padded: int):
    devices = jax.devices()  # the global mesh: every process's devices
    if len(devices) == 1:
        return None
    mesh = jax.sharding.Mesh(np.asarray(devices), ("batch",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("batch"))


def _restore(ckpt_dir: str, template, sharding, fingerprint: str):
    try:
        step, state, rejected = _checkpoint.restore_verified(ckpt_dir, template, config=fingerprint)
    except _checkpoint.CheckpointError as err:
        raise UsageError(_cut(f"{err}; no verified checkpoint is left to resume from: start a new --out.")) from None
    # The same placement over devices as a fresh state.
    state = _put(state, sharding) if sharding is not None else state
    return step, state, rejected


def _progress(enabled: bool, **kwargs):
    from tqdm import tqdm

    return tqdm(disable=not enabled, unit="iter", file=sys.stderr, **kwargs)
