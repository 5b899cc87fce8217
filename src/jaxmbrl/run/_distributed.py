"""Runs over several processes (hosts) with JAX's own multi-controller runtime.

Every process runs the same program on its local devices; the batch of seeds x points
is sharded over the global mesh (all processes' devices). What the host needs from the
batch (metrics, divergence flags, the state for a checkpoint) is gathered onto every
process, so each process takes the same decisions; only process 0 writes the run
folder. No scheduler of our own: `--coordinator HOST:PORT --num-processes N
--process-id I` (or `JAXMBRL_COORDINATOR`, `JAXMBRL_NUM_PROCESSES`,
`JAXMBRL_PROCESS_ID`), or `--coordinator auto` for JAX's cluster detection (Slurm's
`SLURM_*`, Open MPI's `OMPI_*`, Cloud TPU).
"""
from __future__ import annotations

import os
from typing import Any, Optional

import jax
import numpy as np

from jaxmbrl.run._config import UsageError

ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID = "JAXMBRL_COORDINATOR", "JAXMBRL_NUM_PROCESSES", "JAXMBRL_PROCESS_ID"
# A lost process is noticed by the coordination service's heartbeats: bounded, so the
# others stop with an error instead of waiting forever.
HEARTBEAT_TIMEOUT_S = 20


class PeerLost(RuntimeError):
    """Another process of a multi-process run stopped (killed, crashed or unreachable)."""


def settings_from(coordinator: Optional[str], num_processes: Optional[int], process_id: Optional[int]):
    """`(coordinator, num_processes, process_id)` from the flags, else the environment; None: one process."""
    coordinator = coordinator or os.environ.get(ENV_COORDINATOR) or None
    env_n, env_i = os.environ.get(ENV_NUM_PROCESSES), os.environ.get(ENV_PROCESS_ID)
    try:
        num_processes = num_processes if num_processes is not None else (int(env_n) if env_n else None)
        process_id = process_id if process_id is not None else (int(env_i) if env_i else None)
    except ValueError:
        raise UsageError(f"{ENV_NUM_PROCESSES} and {ENV_PROCESS_ID} must be integers.") from None
    if coordinator is None:
        if num_processes is not None or process_id is not None:
            raise UsageError("--num-processes and --process-id need --coordinator HOST:PORT (or --coordinator auto).")
        return None
    if coordinator == "auto":
        return ("auto", num_processes, process_id)
    host, _, port = coordinator.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--coordinator {coordinator!r} is not HOST:PORT (e.g. node0:1234), nor 'auto'.")
    if num_processes is None or process_id is None:
        raise UsageError("--coordinator HOST:PORT needs --num-processes N and --process-id I.")
    if num_processes < 1 or not 0 <= process_id < num_processes:
        raise UsageError(f"--process-id {process_id} must be in [0, --num-processes {num_processes}).")
    return (coordinator, num_processes, process_id)


def initialize(settings, timeout_s: int = 300) -> None:
    """Starts JAX's distributed runtime (before any computation); no-op for one process."""
    if settings is None:
        return
    coordinator, num_processes, process_id = settings
    # Gathers across processes on CPU devices need a collectives implementation (only
    # the CPU backend reads this).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = dict(initialization_timeout=timeout_s, heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_S,
                  shutdown_timeout_seconds=HEARTBEAT_TIMEOUT_S)
    try:
        if coordinator == "auto":
            jax.distributed.initialize(num_processes=num_processes, process_id=process_id, **kwargs)
        else:
            jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id, **kwargs)
    except (RuntimeError, ValueError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise UsageError(f"could not join the multi-process run at {coordinator} ({first}); "
                         f"start every process with the same --coordinator and --num-processes.") from None


def leave(code: int) -> None:
    """Ends a multi-process run's process that stops with an error, at once.

    A normal exit waits in JAX's shutdown barrier for every other process, which may be
    blocked in a gather with this one: the error would become a hang. Leaving without it
    closes this process's connections, so the others see a lost peer (`PeerLost`).
    """
    if jax.process_count() > 1 and code != 0:
        import sys

        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def num_processes() -> int:
    return jax.process_count()


def is_primary() -> bool:
    """Process 0 writes the run folder, the logs, the plots and the trackers."""
    return jax.process_index() == 0


def gather(tree: Any) -> Any:
    """Every leaf as a host numpy array of its global value (all processes' shards)."""
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    from jax.experimental import multihost_utils

    try:
        return multihost_utils.process_allgather(tree, tiled=True)
    except Exception as err:  # noqa: BLE001 - the runtime raises several types for a dead peer
        raise PeerLost(_peer_message(err)) from None


def any_process(flag: bool) -> bool:
    """True on every process when `flag` is true on one (a signal seen by one stops all)."""
    if jax.process_count() == 1:
        return bool(flag)
    return bool(np.any(gather(np.asarray([flag], np.bool_))))


def agree(value: int) -> int:
    """Process 0's integer on every process (decisions taken from the folder, which only it reads)."""
    if jax.process_count() == 1:
        return int(value)
    from jax.experimental import multihost_utils

    try:
        return int(multihost_utils.broadcast_one_to_all(np.int32(value)))
    except Exception as err:  # noqa: BLE001
        raise PeerLost(_peer_message(err)) from None


def barrier(name: str) -> None:
    if jax.process_count() == 1:
        return
    from jax.experimental import multihost_utils

    try:
        multihost_utils.sync_global_devices(name)
    except Exception as err:  # noqa: BLE001
        raise PeerLost(_peer_message(err)) from None


def _peer_message(err: Exception) -> str:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
    return (f"process {jax.process_index()} of {jax.process_count()} lost another process of the run ({first}); "
            f"the run stopped at its last checkpoint: restart every process with --resume.")
