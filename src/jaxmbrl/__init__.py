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

from jaxmbrl import agents, algorithms, buffers, envs, models, planning, testing, types
from jaxmbrl.types import Transition

__version__ = "0.1.0"

__all__ = ["Transition", "agents", "algorithms", "buffers", "envs", "models", "planning", "testing", "types", "__version__"]
