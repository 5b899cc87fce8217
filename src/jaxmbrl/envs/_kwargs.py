"""Environment keyword arguments as a hashable, immutable mapping.

A Config holds `env_kwargs` in this form so that the Config itself stays hashable (a
static argument of jit) and `make` can key its cache on it.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any, List, Tuple

_FORMS = "a dict, a FrozenDict, a sequence of (name, value) pairs or None"


def kwargs_items(env_kwargs: Any) -> List[Tuple[str, Any]]:
    """`env_kwargs` in any accepted form as a list of `(name, value)` pairs.

    Accepts a mapping, a sequence of `(name, value)` pairs or None (no kwargs). Names
    must be strings and appear once. Values are returned as given (not frozen).
    """
    if env_kwargs is None:
        return []
    if isinstance(env_kwargs, Mapping):
        items = list(env_kwargs.items())
    elif isinstance(env_kwargs, (list, tuple)) and all(
        isinstance(p, (list, tuple)) and len(p) == 2 for p in env_kwargs
    ):
        items = [tuple(p) for p in env_kwargs]
    else:
        raise ValueError(f"env_kwargs must be {_FORMS}, got {type(env_kwargs).__name__} {env_kwargs!r:.80}.")
    names = [name for name, _ in items]
    bad = [name for name in names if not isinstance(name, str)]
    if bad:
        raise ValueError(f"env_kwargs names must be strings, got {bad!r:.80}.")
    if len(set(names)) != len(names):
        raise ValueError(f"env_kwargs names {sorted({n for n in names if names.count(n) > 1})} appear twice.")
    return items


def _freeze_value(value: Any) -> Any:
    # Lists (e.g. a maze layout read from JSON) must hash; nested mappings likewise.
    if isinstance(value, (list, tuple)):
        return tuple(_freeze_value(v) for v in value)
    if isinstance(value, Mapping):
        return freeze_kwargs(value)
    return value


def freeze_kwargs(env_kwargs: Any = None):
    """Environment keyword arguments as a hashable, immutable `flax.core.FrozenDict`.

    Args:
      env_kwargs: a dict, a FrozenDict, a sequence of `(name, value)` pairs, or None
        (no kwargs).

    Returns:
      A FrozenDict with sorted keys. Lists and tuples become tuples (recursively) and
      nested mappings FrozenDicts, so it hashes; `dict(result)` of plain values (numbers,
      strings, bools, None, lists) is JSON-able. Equal kwargs give equal, equally hashed
      results whatever their order or form.

    Raises:
      ValueError: `env_kwargs` is none of the accepted forms, a name is not a string or
        repeats, or a value cannot be hashed (e.g. an array: give a tuple).
    """
    from flax.core import FrozenDict

    frozen = {}
    for name, value in sorted(kwargs_items(env_kwargs), key=lambda p: p[0]):
        value = _freeze_value(value)
        try:
            hash(value)
        except TypeError:
            raise ValueError(
                f"env_kwargs[{name!r}] is a {type(value).__name__}, which cannot be hashed: "
                f"give a number, string, bool, None or tuple."
            ) from None
        frozen[name] = value
    return FrozenDict(frozen)
