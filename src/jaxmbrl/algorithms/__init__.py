"""Algorithms: each a `Config`, `HParams` and `make_train`."""
from jaxmbrl.algorithms import dreamer, dyna, mbpo, pets

__all__ = ["dreamer", "dyna", "mbpo", "pets"]
