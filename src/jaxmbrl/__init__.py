"""jaxmbrl: model-based reinforcement learning in JAX, whole loops compiled to one program."""
import os as _os

# XLA's CPU "concurrency optimised" scheduler (jaxlib 0.10) can deadlock: the program
# sits idle forever inside `block_until_ready`. Dreamer's vmapped training step hits it
# with 3 seeds and a 128-unit GRU (docs/BENCHMARKS.md has the measurements). XLA
# reads the flag when the CPU backend starts, so it must be set before the first
# computation; a user's own setting of the flag wins.
if "xla_cpu_enable_concurrency_optimized_scheduler" not in _os.environ.get("XLA_FLAGS", ""):
    _os.environ["XLA_FLAGS"] = (
        _os.environ.get("XLA_FLAGS", "") + " --xla_cpu_enable_concurrency_optimized_scheduler=false"
    ).strip()

from typing import TYPE_CHECKING as _TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["Transition", "agents", "algorithms", "buffers", "envs", "exploration", "models", "planning", "testing", "types",
           "__version__"]

# Subpackages load on first attribute access (PEP 562): `import jaxmbrl` (and so the
# command line's --help) must not pay for gymnax, flax, optax and every algorithm.
_SUBMODULES = frozenset({"agents", "algorithms", "buffers", "envs", "exploration", "models", "planning", "run", "testing",
                         "types"})

if _TYPE_CHECKING:  # static analysers see the eager imports
    from jaxmbrl import agents, algorithms, buffers, envs, exploration, models, planning, testing, types
    from jaxmbrl.types import Transition


def __getattr__(name):
    import importlib

    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name == "Transition":
        value = importlib.import_module(f"{__name__}.types").Transition
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__) | _SUBMODULES)
