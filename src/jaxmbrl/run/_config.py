"""Algorithm registry and configuration from defaults, presets, files and overrides."""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
from typing import Any, Dict, Iterable, Mapping, Tuple

from jaxmbrl.algorithms import _registry
from jaxmbrl.algorithms._contract import RENAMED


class UsageError(ValueError):
    """A problem with what the user asked for; the CLI prints it on one line, exit 2."""


def available_algorithms() -> Tuple[str, ...]:
    """The registered algorithms (`jaxmbrl.algorithms.register_algorithm`)."""
    return _registry.algorithm_names()


def get_algorithm(name: str):
    """The algorithm module (`Config`, `HParams`, `make_train`, `supports`) for `name`."""
    names = available_algorithms()
    if name not in names:
        near = difflib.get_close_matches(name, names, n=2, cutoff=0.5)
        hint = f" Did you mean {' or '.join(near)}?" if near else ""
        raise UsageError(f"unknown algorithm {name!r}.{hint} Available: {', '.join(names)}.")
    return _registry.load_algorithm(name)


def _fields(algo) -> Dict[str, Tuple[str, Any]]:
    """Settable fields: name -> ("config" | "hparams", default value)."""
    out = {f.name: ("config", getattr(algo.Config(), f.name)) for f in dataclasses.fields(algo.Config)}
    for name, default in algo.Config().hparams()._asdict().items():
        out[name] = ("hparams", default)
    return out


def _parse(name: str, text: Any, default: Any) -> Any:
    """Parses `text` into the type of `default` (values from JSON/YAML may already be typed)."""
    try:
        if isinstance(default, bool):
            if isinstance(text, bool):
                return text
            lowered = str(text).lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(default, int):
            if isinstance(text, float) and not text.is_integer():
                raise ValueError
            value = int(str(text)) if not isinstance(text, (int, float)) else int(text)
            if not -2**31 <= value < 2**31:  # the programs count in int32
                raise UsageError(f"{name}={_short(text)} is out of range: integers must lie within +-2**31.")
            return value
        if isinstance(default, float):
            return float(text)
        if default is None:  # an optional number (mbpo's target_entropy): "none" keeps the default
            if text is None or str(text).strip().lower() in ("none", "null", ""):
                return None
            return float(text)
        if isinstance(default, tuple):
            items = text if isinstance(text, (list, tuple)) else [t for t in str(text).strip("()[] ").split(",") if t.strip()]
            kind = type(default[0]) if default else int
            return tuple(kind(str(t).strip()) for t in items)
        if isinstance(default, Mapping):
            value = json.loads(text) if isinstance(text, str) else text
            if not isinstance(value, Mapping):
                raise ValueError
            return dict(value)
        return str(text)
    except UsageError:
        raise
    except (TypeError, ValueError, OverflowError):
        kind = "true/false" if isinstance(default, bool) else type(default).__name__
        if default is None:
            kind = "number or none"
        if isinstance(default, tuple):
            kind = "comma-separated integers, e.g. 64,64"
        if isinstance(default, Mapping):
            kind = 'JSON mapping, e.g. {"max_steps_in_episode": 100}'
        raise UsageError(f"{name}={_short(text)} is not a valid {kind} (default {default!r}).") from None


def _short(value: Any, limit: int = 80) -> str:
    """`repr(value)` cut to `limit` characters: an error never echoes a huge value back."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def parse_assignments(pairs: Iterable[str]) -> Dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise UsageError(f"--set/--grid expects field=value, got {_short(pair)}.")
        name, value = pair.split("=", 1)
        if name.strip() in out:  # the last one would win silently
            raise UsageError(f"{_short(name.strip())} is given twice ({_short(out[name.strip()], 40)} and "
                             f"{_short(value.strip(), 40)}); give each field once.")
        out[name.strip()] = value.strip()
    return out


def check_field(algo_name: str, algo, name: str) -> Tuple[str, Any]:
    fields = _fields(algo)
    if name not in fields and name in RENAMED:
        raise UsageError(f"field {name!r} of {algo_name} was renamed: use {RENAMED[name]}.")
    if name not in fields:
        near = difflib.get_close_matches(name, list(fields), n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(near)}?" if near else f" Valid fields: {', '.join(fields)}."
        raise UsageError(f"unknown field {_short(name)} for {algo_name}.{hint}")
    return fields[name]


def load_file(path: str) -> Dict[str, Any]:
    if not os.path.exists(path):
        raise UsageError(f"config file {_short(path)} does not exist.")
    if not os.path.isfile(path):
        raise UsageError(f"config file {_short(path)} is not a file.")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read config file {_short(path)}: not UTF-8 text ({type(err).__name__}).") from None
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            data = yaml.safe_load(text) or {}
        else:
            data = json.loads(text)
    except Exception as err:  # noqa: BLE001 - any parse error is the user's file
        raise UsageError(f"cannot parse config file {_short(path)}: {err}".splitlines()[0][:300]) from None
    if not isinstance(data, dict):
        raise UsageError(f"config file {_short(path)} must hold a mapping of field: value.")
    return data


def resolve(algo_name: str, *, preset: str = "default", file: str | None = None,
            overrides: Dict[str, Any] | None = None, env: str | None = None):
    """Config and HParams from defaults (or `preset`), then `file`, then `overrides`.

    Returns:
      `(algo_module, config, hparams)`; the config is validated.
    Raises:
      UsageError naming the offending field or value.
    """
    algo = get_algorithm(algo_name)
    if preset not in ("default", "tiny"):
        raise UsageError(f"unknown preset {preset!r}; choose default or tiny.")
    base = algo.Config()
    values = dict(load_file(file)) if file else {}
    values.update(overrides or {})
    if env is not None:
        values["env_id"] = env
    config_kw, hp_kw = {}, {}
    for name, text in values.items():
        name = str(name)
        where, _ = check_field(algo_name, algo, name)
        default = getattr(base, name) if where == "config" else getattr(algo.HParams(), name)
        value = _parse(name, text, default)
        (config_kw if where == "config" else hp_kw)[name] = value
    try:
        # tiny() sees the overrides, so a preset can depend on them (Dyna's mode).
        config = algo.Config.tiny(**config_kw) if preset == "tiny" else dataclasses.replace(base, **config_kw)
        config.validate()
        hparams = config.hparams()._replace(**hp_kw)
        config.validate_hparams(hparams)
    except ValueError as err:
        raise UsageError(str(err).splitlines()[0][:300]) from None
    except RuntimeError as err:
        if str(err).startswith("Could not build"):  # an env that needs the network
            raise UsageError(str(err).splitlines()[0][:300]) from None
        raise
    return algo, config, hparams


def config_dict(config, hparams) -> Dict[str, Any]:
    def plain(v):
        if isinstance(v, Mapping):
            return {k: plain(x) for k, x in v.items()}
        return list(v) if isinstance(v, tuple) else v

    return {
        "config": {k: plain(v) for k, v in dataclasses.asdict(config).items()},
        "hparams": {k: float(v) for k, v in hparams._asdict().items()},
    }


def versions() -> Dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("jaxmbrl", "jax", "jaxlib", "flax", "optax", "gymnax", "orbax-checkpoint", "numpy"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
