"""Algorithms: each a `Config`, `HParams` and `make_train`."""
from jaxmbrl.algorithms import pets

__all__ = ["pets"]
