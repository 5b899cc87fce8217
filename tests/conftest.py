import os

# Most of the suite's time is XLA compiling small programs that then run for well under a
# second, so the tests ask XLA for its fastest compile: LLVM's level-0 backend, the CPU
# FAST_COMPILE preset, and the classic loop emitters for fusions instead of the newer
# fusion emitters. On a 2-core Zen 3, Dreamer's tiny step compiles in 8.4 s with all three
# against 16.4 s with level 0 alone, and tests/test_models.py
# with tests/test_rssm.py take 102 s against 167 s; the programs run about as fast. Set
# before JAX starts its backend, and inherited by the subprocesses the tests start.
_FAST_COMPILE = ("--xla_backend_optimization_level=0", "--xla_cpu_opt_preset=FAST_COMPILE",
                 "--xla_cpu_use_fusion_emitters=false")
_flags = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join([_flags] + [f for f in _FAST_COMPILE if f.split("=")[0] not in _flags]).strip()

import gc  # noqa: E402

import jax  # noqa: E402
import pytest

# Tracing builds many short-lived Python objects; the cyclic collector's frequent passes
# over everything imported cost ~15% of a Dreamer step's trace (4.1 s -> 3.4 s).
gc.freeze()
gc.set_threshold(50_000, 50, 50)

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
    """Runs `config` for `num_seeds` seeds (keys split from PRNGKey(0), default hparams) with
    the programs the runner compiles (`jit(vmap(init))`, then a one-iteration chunk per
    learning iteration), so `jaxmbrl train ALGO --preset tiny --seeds 2` finds them in the
    persistent cache. Returns (init state, final state, Metrics [seeds, num_iterations], the
    jitted chunk): one compiled program serves a module's run, repeat, compile-once and CLI
    tests."""
    from jaxmbrl.run import _runner  # the runner's imports (orbax) only where needed

    keys = jax.random.split(jax.random.PRNGKey(0), num_seeds)
    hp = jax.tree.map(lambda x: jax.numpy.full((num_seeds,), x, jax.numpy.float32), config.hparams())
    init = jax.jit(jax.vmap(train.init))
    first = init(keys, hp)
    step = jax.jit(_runner.chunk_program(train, 1, _runner._checked_leaves(first)[1]))
    state, rows = first, [first.warmup]
    for _ in range(config.num_iterations - config.warmup_iterations):
        state, metrics, _ = step(state)
        rows.append(jax.tree.map(lambda x: x[0][:, None], metrics))
    return first, state, jax.tree.map(lambda *xs: jax.numpy.concatenate(xs, 1), *rows), step


@pytest.fixture(scope="session")
def run_by_steps():
    return _run_by_steps


def pytest_collection_finish(session):
    # `--dist loadgroup` keeps a file's module fixture on one worker by suffixing the test
    # ids with the group; pytest 9.2 silently undid that (pytest-xdist#1386) and every
    # fixture was built twice. Said here rather than found again from the suite's time.
    if not session.config.getoption("loadgroup", default=False):
        return
    lost = [item.nodeid for item in session.items
            if item.get_closest_marker("xdist_group") is not None and "@" not in item.nodeid]
    if lost:
        session.config.issue_config_time_warning(pytest.PytestConfigWarning(
            f"--dist loadgroup does not group {len(lost)} marked tests (e.g. {lost[0]}): this pytest/pytest-xdist "
            f"pair builds each module fixture on every worker; use pytest<9.2 (pytest-xdist#1386)"), stacklevel=1)
