"""Orbax checkpoints of a whole algorithm state (any pytree), saved leaf by leaf.

States hold NamedTuples, `None` fields and PRNG keys; saving the flat list of leaves
and restoring against the structure of a freshly initialised state keeps Orbax
independent of those types. Orbax writes each step to a temporary folder and renames
it when complete, so a run killed mid-save leaves the previous checkpoint loadable.
"""
from __future__ import annotations

import os
from typing import Any, Optional

import jax
import numpy as np


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be restored (corrupt, truncated, or for another state)."""


def _manager(directory: str, max_to_keep: int = 2, read_only: bool = False):
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=not read_only,
                                           enable_async_checkpointing=False, read_only=read_only)
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(directory: str, step: int, state: Any, max_to_keep: int = 2) -> None:
    import orbax.checkpoint as ocp

    leaves = {f"leaf_{i:05d}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))}
    with _manager(directory, max_to_keep) as manager:
        manager.save(step, args=ocp.args.StandardSave(leaves))
        manager.wait_until_finished()


def latest_step(directory: str) -> Optional[int]:
    if not os.path.isdir(directory):
        return None
    with _manager(directory, read_only=True) as manager:
        return manager.latest_step()


def restore(directory: str, target: Any, step: Optional[int] = None) -> tuple[int, Any]:
    """Restores the latest (or `step`) checkpoint into the structure of `target`.

    Raises:
      CheckpointError naming the folder and what is wrong.
    """
    import orbax.checkpoint as ocp

    step = latest_step(directory) if step is None else step
    if step is None:
        raise CheckpointError(f"no checkpoint in {directory}")
    flat, treedef = jax.tree.flatten(target)
    abstract = {f"leaf_{i:05d}": jax.ShapeDtypeStruct(tuple(x.shape), x.dtype) for i, x in enumerate(flat)}
    path = os.path.join(directory, str(step))
    try:
        with _manager(directory, read_only=True) as manager:
            leaves = manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except Exception as err:  # noqa: BLE001 - orbax raises many types for bad files
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated ({first[:200]})") from None
    if set(leaves) != set(abstract):
        raise CheckpointError(f"checkpoint {path} holds a different state ({len(leaves)} arrays, expected {len(abstract)})")
    for name, spec in abstract.items():
        got = leaves[name]
        if tuple(got.shape) != tuple(spec.shape) or got.dtype != spec.dtype:
            raise CheckpointError(
                f"checkpoint {path} does not match this config: array {name} is {got.dtype}{list(got.shape)}, "
                f"expected {spec.dtype}{list(spec.shape)}"
            )
    # Device arrays, not numpy: jit keys its cache on committed device arrays, so a
    # numpy state would dispatch (and compile) a second time.
    restored = jax.device_put([leaves[f"leaf_{i:05d}"] for i in range(len(flat))])
    return step, jax.tree.unflatten(treedef, restored)
