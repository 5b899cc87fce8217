"""jaxmbrl: model-based reinforcement learning in JAX, whole loops compiled to one program."""
from jaxmbrl import envs, types

__version__ = "0.1.0"

__all__ = ["envs", "types", "__version__"]
