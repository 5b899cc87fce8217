"""Shared helpers for the benchmark scripts (machine description, peak FLOP/s, timing)."""
from __future__ import annotations

import os
import platform
import time

import jax
import jax.numpy as jnp


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
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
