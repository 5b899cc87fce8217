"""Algorithms: each a `Config`, `HParams`, `make_train` and `supports` (see `_contract`),
registered by name in `_registry`. Submodules load on first use."""
import importlib as _importlib

from jaxmbrl.algorithms._registry import algorithm_names, load_algorithm, register_algorithm

__all__ = ["algorithm_names", "dreamer", "dyna", "load_algorithm", "mbpo", "pets", "register_algorithm"]


def __getattr__(name):
    if name in ("dreamer", "dyna", "mbpo", "pets"):
        return _importlib.import_module(f"jaxmbrl.algorithms.{name}")
    raise AttributeError(f"module 'jaxmbrl.algorithms' has no attribute {name!r}")
