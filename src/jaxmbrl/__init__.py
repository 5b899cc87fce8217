"""jaxmbrl: model-based reinforcement learning in JAX, whole loops compiled to one program."""
from jaxmbrl import agents, algorithms, buffers, envs, models, planning, testing, types
from jaxmbrl.types import Transition

__version__ = "0.1.0"

__all__ = ["Transition", "agents", "algorithms", "buffers", "envs", "models", "planning", "testing", "types", "__version__"]
