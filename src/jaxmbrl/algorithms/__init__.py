"""Algorithms: each a `Config`, `HParams` and `make_train`."""
from jaxmbrl.algorithms import dyna, mbpo, pets

__all__ = ["dyna", "mbpo", "pets"]
