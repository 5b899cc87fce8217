"""Shared helpers for the benchmark scripts (machine description, peak FLOP/s, timing)."""
from __future__ import annotations

import os
import platform
import time

import jax
import jax.numpy as jnp


def machine() -> str:
    """Cores, CPU (with its family/model: "AMD EPYC" names several generations whose
    float32 peaks differ twofold), jax version and device."""
    cpu = platform.processor() or platform.machine()
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" in fields:
        cpu = f"{fields['model name']} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')}"
        cpu += ", avx512_bf16)" if "avx512_bf16" in fields.get("flags", "").split() else ")"
    dev = jax.devices()[0]
    return f"{os.cpu_count()} cores, {cpu}; jax {jax.__version__} on {dev.platform} ({dev.device_kind})"


def timed(fn, *args, repeats: int = 3):
    """(first-call seconds incl. compile, best steady-state seconds, last output)."""
    start = time.perf_counter()
    out = jax.block_until_ready(fn(*args))
    first = time.perf_counter() - start
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        best = min(best, time.perf_counter() - start)
    return first, best, out


def matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """float32 GFLOP/s of one large square matmul: the machine's practical peak."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    _, best, _ = timed(f, a, repeats=repeats)
    return 2 * n**3 / best / 1e9


def bf16_matmul_peak_gflops(n: int = 2048, repeats: int = 5) -> float:
    """GFLOP/s of one large square matmul of bfloat16 inputs accumulated in float32 (the
    product `compute_dtype="bfloat16"` runs); about twice the float32 peak on CPUs with
    AVX512-BF16."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32).astype(jnp.bfloat16)
    f = jax.jit(lambda x: jax.lax.dot(x, x, preferred_element_type=jnp.float32))
    _, best, _ = timed(f, a, repeats=repeats)
    return 2 * n**3 / best / 1e9


def mlp_flops(sizes, batch: int, backward: bool) -> float:
    """FLOPs of dense layers `sizes` (in, h1, ..., out) over `batch` rows.

    Forward is 2*in*out per layer and row; a backward pass adds the weight gradient
    and (except for the first layer, whose input needs no gradient) the input gradient.
    """
    fwd = sum(2 * a * b for a, b in zip(sizes[:-1], sizes[1:]))
    if not backward:
        return fwd * batch
    first = 2 * sizes[0] * sizes[1]
    return (3 * fwd - first) * batch


def run_seeds(train, config, num_seeds: int, seed: int = 0, desc: str = "", hparams=None,
              max_seconds: float | None = None, postfix: str = "episode_return", keys=None):
    """Runs `num_seeds` seeds of an algorithm as one vmapped program, one compiled
    iteration per call (so a progress bar can follow). With `max_seconds`, stops after
    the first iteration that ends past that wall time (compile included). A leaf of
    `hparams` may be a [num_seeds] array (a sweep in the same program); `keys`
    [num_seeds, 2] replaces the keys split from `seed` (e.g. the same seeds per setting).

    Returns:
      (metrics: dict name -> numpy array [seeds, iterations], wall seconds incl. compile,
       compile seconds of init + first step).
    """
    import numpy as np
    from tqdm import tqdm

    hp = config.hparams() if hparams is None else hparams
    batched = jax.tree.map(lambda x: jnp.broadcast_to(jnp.asarray(x, jnp.float32), (num_seeds,)), hp)
    if keys is None:
        keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)
    start = time.perf_counter()
    init = jax.jit(jax.vmap(train.init))
    step = jax.jit(jax.vmap(train.step))
    state = jax.block_until_ready(init(keys, batched))
    warmup = int(jax.tree.leaves(state.warmup)[0].shape[1])
    rows = [jax.tree.map(lambda a: np.asarray(a)[:, i], state.warmup._asdict()) for i in range(warmup)]
    bar = tqdm(total=config.num_iterations, initial=warmup, desc=desc, unit="iter")
    compile_s = None
    for _ in range(config.num_iterations - warmup):
        t = time.perf_counter()
        state, metrics = step(state)
        metrics = jax.tree.map(np.asarray, metrics._asdict())
        if compile_s is None:
            compile_s = time.perf_counter() - start
        rows.append(metrics)
        bar.set_postfix(ret=f"{np.nanmean(metrics[postfix]):.1f}", s=f"{time.perf_counter() - t:.0f}")
        bar.update(1)
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
    bar.close()
    wall = time.perf_counter() - start
    table = {k: np.stack([r[k] for r in rows], axis=1) for k in rows[0]}
    return table, wall, compile_s


def add_brax_arguments(parser, env: str = "brax/inverted_pendulum"):
    """The task, backend and seed options the Brax scripts share."""
    parser.add_argument("--env", default=env)
    parser.add_argument("--backend", default="generalized", help="Brax physics pipeline")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)


def mpc_episodes_until(table, warmup_iterations: int, target: float):
    """Per seed, an upper bound on the MPC episodes until one returned `target` (None: never).

    `table` is `run_seeds`' metrics of an algorithm whose iterations may hold several
    episodes (PETS): every episode of the iteration in which `target` was first reached
    counts, as the iteration's metrics do not say which one reached it.
    """
    import numpy as np

    best = table["best_episode_return"][:, warmup_iterations:]  # [seeds, iterations]
    mpc_episodes = np.cumsum(table["episodes"][:, warmup_iterations:], axis=1)
    solved = best >= target
    return [int(mpc_episodes[s, np.argmax(solved[s])]) if solved[s].any() else None
            for s in range(best.shape[0])]


def plot_curves(path, curves, title, xlabel, reference=None):
    """Mean and min-max band over seeds per curve ([seeds, points] arrays)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(6, 4))
    for label, values in curves.items():
        x = np.arange(1, values.shape[1] + 1)
        ax.plot(x, np.nanmean(values, 0), marker="o", label=label)
        ax.fill_between(x, np.nanmin(values, 0), np.nanmax(values, 0), alpha=0.2)
    if reference is not None:
        label, values = reference
        ax.plot(np.arange(1, len(values) + 1), values, "k--", marker="x", label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_sets(items):
    """`["field=value", ...]` -> dict, values parsed as Python literals where they parse."""
    import ast

    out = {}
    for item in items:
        field, value = item.split("=", 1)
        try:
            out[field] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[field] = value
    return out


def plain_config(config) -> dict:
    """A Config's fields as JSON-ready values (env_kwargs is a frozen mapping)."""
    return {k: dict(v) if hasattr(v, "items") else v for k, v in vars(config).items()}


def plain_hparams(hparams) -> dict:
    """An HParams tuple's fields as JSON-ready floats."""
    return {k: float(v) for k, v in hparams._asdict().items()}


def print_eval_table(steps, evals):
    """Prints a markdown table of evaluation returns [seeds, iterations] against env steps,
    skipping iterations without an evaluation (NaN: the random warm-up)."""
    import numpy as np

    print("| env steps | mean eval return | min | max |")
    print("|---:|---:|---:|---:|")
    for i, n in enumerate(steps):
        if np.isfinite(evals[:, i]).all():
            print(f"| {n} | {evals[:, i].mean():.1f} | {evals[:, i].min():.1f} | {evals[:, i].max():.1f} |")


# Trace events that are containers or runtime bookkeeping, not an operation's own work.
_PROFILE_SKIP = ("while", "conditional", "call", "ThunkExecutor", "PjitFunction", "SlinkyThreadPool", "$")


def profiled_op_seconds(fn, *args, ops):
    """`(fn(*args), wall seconds, {op name: seconds})`: one call under JAX's profiler,
    the time of every executed operation named in `ops` (XLA's names in the compiled
    HLO text) summed over its executions."""
    import collections
    import glob
    import tempfile

    seconds = collections.Counter()
    with tempfile.TemporaryDirectory() as folder:
        jax.profiler.start_trace(folder)
        start = time.perf_counter()
        out = jax.block_until_ready(fn(*args))
        wall = time.perf_counter() - start
        jax.profiler.stop_trace()
        # The XSpace protobuf holds every event (the JSON trace is capped).
        path = sorted(glob.glob(os.path.join(folder, "**", "*.xplane.pb"), recursive=True))[-1]
        for plane in jax.profiler.ProfileData.from_file(path).planes:
            for line in plane.lines:
                for event in line.events:
                    if event.name in ops and not event.name.startswith(_PROFILE_SKIP):
                        seconds[event.name] += event.duration_ns / 1e9
    return out, wall, seconds
