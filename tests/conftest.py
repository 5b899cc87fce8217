import os

# Most of the suite's time is XLA compiling small programs that then run for well under a
# second. LLVM's level-0 backend compiles them in about half the time (Dreamer's tiny
# step: 17.5 s -> 9.1 s) and runs them somewhat slower; set before JAX starts its
# backend, and inherited by the subprocesses the tests start.
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402
import pytest

from jaxmbrl import envs

# Many tests build the same small programs (tiny configs) in separate closures; JAX's
# persistent compilation cache keys on the program itself, so those compile once per
# test run (and once per machine across runs).
_CACHE = os.environ.get("JAXMBRL_TEST_CACHE", os.path.expanduser("~/.cache/jaxmbrl-tests/jax"))
jax.config.update("jax_compilation_cache_dir", _CACHE)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
# Subprocesses the tests start (the CLI, two writers, signals) read the same cache.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _CACHE)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")


@pytest.fixture(scope="session")
def pendulum_data():
    """10,000 random-action Pendulum-v1 transitions [10000, ...] plus 2,000 held-out ones."""
    env, env_params, spec = envs.make("Pendulum-v1")
    collect = jax.jit(lambda k, t: envs.random_rollout(env, env_params, spec, k, t, 10), static_argnums=1)
    flat = lambda tr: jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), tr)
    return spec, flat(collect(jax.random.PRNGKey(0), 1000)), flat(collect(jax.random.PRNGKey(1), 200))


def _run_by_steps(train, config, num_seeds=2):
    """Runs `config` for `num_seeds` seeds (keys split from PRNGKey(0), default hparams) as
    the runner and the scripts do: jit(vmap(init)), then jit(vmap(step)) once per learning
    iteration. Returns (init state, final state, Metrics [seeds, num_iterations], the jitted
    step): one compiled step serves a module's run, repeat and compile-once tests."""
    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    hp = jax.tree.map(lambda x: jax.numpy.full((num_seeds,), x, jax.numpy.float32), config.hparams())
    init, step = jax.jit(jax.vmap(train.init)), jax.jit(jax.vmap(train.step))
    first = init(keys, hp)
    state, rows = first, [first.warmup]
    for _ in range(config.num_iterations - config.warmup_iterations):
        state, metrics = step(state)
        rows.append(jax.tree.map(lambda x: x[:, None], metrics))
    return first, state, jax.tree.map(lambda *xs: jax.numpy.concatenate(xs, 1), *rows), step


@pytest.fixture(scope="session")
def run_by_steps():
    return _run_by_steps
