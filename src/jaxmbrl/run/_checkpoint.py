"""Orbax checkpoints of a whole algorithm state (any pytree), saved leaf by leaf and checked.

States hold NamedTuples, `None` fields and PRNG keys; saving the flat list of leaves
and restoring against the structure of a freshly initialised state keeps Orbax
independent of those types. Orbax writes each step to a temporary folder and renames
it when complete, so a run killed mid-save leaves the previous checkpoint loadable.

Orbax does not notice flipped bytes that still decode, so each step folder also holds
`jaxmbrl_checksum.json`: a sha256 over every leaf's dtype, shape and bytes, and a hash
of the run's config. It is written (atomically) after Orbax finalises the step, so a
step without one was interrupted and is not trusted. `restore` verifies it and falls
back to the newest step that verifies.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
from typing import Any, Callable, List, Optional, Sequence, Tuple

import jax
import numpy as np

CHECKSUM_NAME = "jaxmbrl_checksum.json"


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored (corrupt, truncated, or for another state)."""


def _quiet_orbax() -> None:
    # Orbax logs through absl at WARNING on every manager it opens; a resume is not news.
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(absl_logging.ERROR)
    except ImportError:
        pass


def _manager(directory: str, max_to_keep: int = 2, read_only: bool = False):
    import orbax.checkpoint as ocp

    _quiet_orbax()
    # In a multi-process run each process opens its own manager over host arrays: process
    # 0 alone saves (the state was gathered onto it), each reads alone; no cross-process
    # barriers, which would wait forever for processes that never call.
    me = jax.process_index()
    multiprocessing = ocp.options.MultiprocessingOptions(primary_host=me, active_processes={me})
    if not read_only:
        os.makedirs(directory, exist_ok=True)  # Orbax refuses `create` with `active_processes`
    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=False,
                                           enable_async_checkpointing=False, read_only=read_only,
                                           multiprocessing_options=multiprocessing)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


@contextlib.contextmanager
def _muted_stderr():
    """Silences stderr (Python's and the C level's) while Orbax reads a step.

    A failing read leaves TensorStore callbacks that print "Event loop is closed"
    tracebacks from other threads; the CheckpointError raised says what went wrong.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stderr(null):
            os.dup2(null.fileno(), 2)
            try:
                yield
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
    finally:
        os.close(saved)


def _leaf_name(i: int) -> str:
    return f"leaf_{i:05d}"


def digest(leaves: Sequence[np.ndarray]) -> str:
    """sha256 over each leaf's dtype, shape and bytes (in order)."""
    h = hashlib.sha256()
    for x in leaves:
        x = np.ascontiguousarray(x)
        h.update(f"{x.dtype.str}{x.shape};".encode())
        h.update(x.tobytes())
    return h.hexdigest()


def config_hash(meta: dict) -> str:
    """A hash of what decides the state: algorithm, config, sweep points and seeds."""
    keep = {k: meta.get(k) for k in ("algorithm", "config", "hparams", "points", "seeds", "seed")}
    return hashlib.sha256(json.dumps(keep, sort_keys=True, default=str).encode()).hexdigest()


def save(directory: str, step: int, state: Any, max_to_keep: int = 2, config: str = "") -> None:
    import orbax.checkpoint as ocp

    from jaxmbrl.run import _files

    arrays = [np.asarray(x) for x in jax.tree.leaves(state)]
    leaves = {_leaf_name(i): x for i, x in enumerate(arrays)}
    with _manager(directory, max_to_keep) as manager:
        manager.save(step, args=ocp.args.StandardSave(leaves))
        manager.wait_until_finished()
    _files.write_json(os.path.join(directory, str(step), CHECKSUM_NAME),
                      {"sha256": digest(arrays), "config": config, "leaves": len(arrays)})


def steps(directory: str) -> List[int]:
    """Finalised steps, oldest first."""
    if not os.path.isdir(directory):
        return []
    with _manager(directory, read_only=True) as manager:
        return sorted(manager.all_steps())


def latest_step(directory: str) -> Optional[int]:
    found = steps(directory)
    return found[-1] if found else None


def _restore_step(directory: str, step: int, flat, config: Optional[str]):
    """The leaves of one step, verified; raises CheckpointError saying what is wrong."""
    import orbax.checkpoint as ocp

    path = os.path.join(directory, str(step))
    abstract = {_leaf_name(i): jax.ShapeDtypeStruct(tuple(x.shape), x.dtype) for i, x in enumerate(flat)}
    try:
        with open(os.path.join(path, CHECKSUM_NAME)) as f:
            expected = json.load(f)
        if not isinstance(expected, dict):
            raise ValueError
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} has no checksum (its save was interrupted)") from None
    except (OSError, ValueError):
        raise CheckpointError(f"checkpoint {path} has a damaged checksum file") from None
    if config is not None and expected.get("config") != config:
        raise CheckpointError(f"checkpoint {path} was written for another config")
    if expected.get("leaves") != len(flat):
        raise CheckpointError(f"checkpoint {path} holds a different state ({expected.get('leaves')} arrays, "
                              f"expected {len(flat)})")
    try:
        with _muted_stderr(), _manager(directory, read_only=True) as manager:
            leaves = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as err:  # noqa: BLE001 - orbax raises many types for bad files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({first[:120]})") from None
    if set(leaves) != set(abstract):
        raise CheckpointError(f"checkpoint {path} holds a different state ({len(leaves)} arrays, expected {len(abstract)})")
    arrays = []
    for name, spec in abstract.items():
        got = np.asarray(leaves[name])
        if tuple(got.shape) != tuple(spec.shape) or got.dtype != spec.dtype:
            raise CheckpointError(
                f"checkpoint {path} does not match this config: array {name} is {got.dtype}{list(got.shape)}, "
                f"expected {spec.dtype}{list(spec.shape)}"
            )
        arrays.append(got)
    if digest(arrays) != expected.get("sha256"):
        raise CheckpointError(f"checkpoint {path} is corrupt (its arrays do not match their checksum)")
    return arrays


def restore_verified(directory: str, target: Any, config: Optional[str] = None,
                     step: Optional[int] = None) -> Tuple[int, Any, List[Tuple[int, str]]]:
    """The newest checkpoint that verifies, restored into the structure of `target`.

    Args:
      config: the run's `config_hash`; a checkpoint of another config is refused (None: not checked).
      step: restore exactly this step (no fall-back).
    Returns:
      `(step, state, rejected)`, `rejected` the newer steps that failed, with why, newest first.
    Raises:
      CheckpointError naming the folder and what is wrong when no step verifies.
    """
    flat, treedef = jax.tree.flatten(target)
    candidates = [step] if step is not None else steps(directory)[::-1]
    if not candidates:
        raise CheckpointError(f"no checkpoint in {directory}")
    rejected = []
    for candidate in candidates:
        try:
            arrays = _restore_step(directory, candidate, flat, config)
        except CheckpointError as err:
            rejected.append((candidate, str(err)))
            continue
        # Device arrays, not numpy: jit keys its cache on committed device arrays, so a
        # numpy state would dispatch (and compile) a second time.
        return candidate, jax.tree.unflatten(treedef, jax.device_put(arrays)), rejected
    newest = rejected[0][1]
    more = f" (and {len(rejected) - 1} older checkpoint(s) failed too)" if len(rejected) > 1 else ""
    raise CheckpointError(f"{newest}{more}")


def restore(directory: str, target: Any, step: Optional[int] = None,
            on_fallback: Optional[Callable[[str], None]] = None) -> Tuple[int, Any]:
    """Restores the newest verified (or exactly `step`) checkpoint into the structure of `target`.

    A newer step that fails verification is skipped; `on_fallback` (default: a line on
    stderr) hears about each.
    """
    found, state, rejected = restore_verified(directory, target, step=step)
    for _, why in rejected:
        (on_fallback or _stderr)(f"{why}; using step {found} instead.")
    return found, state


def _stderr(message: str) -> None:
    print(f"jaxmbrl: warning: {message}", file=sys.stderr, flush=True)
