"""Several `jaxmbrl` processes on this machine, as a cluster's launcher would start them.

For tests and for trying a multi-process run without a cluster: each process gets its
own CPU devices (`--xla_force_host_platform_device_count`) and the same coordinator on
localhost. Not a scheduler: on a cluster, Slurm (or any launcher) starts the processes.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from typing import List, NamedTuple, Optional, Sequence


class ProcessResult(NamedTuple):
    """One process's exit status and output."""

    returncode: int
    stdout: str
    stderr: str


def free_port() -> int:
    """A TCP port on localhost that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def process_env(devices: int, extra: Optional[dict] = None) -> dict:
    """The environment of a child process with `devices` CPU devices (other XLA flags kept)."""
    env = dict(os.environ)
    flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
    env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={devices}"])
    env["JAX_PLATFORMS"] = "cpu"
    env.update(extra or {})
    return env


def launch_local(argv: Sequence[str], num_processes: int, devices_per_process: int = 2, *,
                 timeout_s: float = 300, kill: Optional[tuple] = None) -> List[ProcessResult]:
    """Runs `jaxmbrl ARGV --coordinator localhost:PORT --num-processes N --process-id I` for every I.

    Args:
      argv: the command line after `jaxmbrl` (e.g. `["train", "pets", "--out", D]`).
      kill: `(process_id, path)`: kill that process (SIGKILL) once `path` exists, to test
        that the others stop with an error rather than hang.
      timeout_s: every process still running after this long is killed (returncode -9).

    Returns:
      One `ProcessResult` per process, in process order.
    """
    port = free_port()
    procs = [
        subprocess.Popen([sys.executable, "-m", "jaxmbrl", *argv, "--coordinator", f"localhost:{port}",
                          "--num-processes", str(num_processes), "--process-id", str(i)],
                         env=process_env(devices_per_process), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for i in range(num_processes)
    ]
    deadline = time.monotonic() + timeout_s
    if kill is not None:
        victim, path = kill
        while not os.path.exists(path) and time.monotonic() < deadline and procs[victim].poll() is None:
            time.sleep(0.2)
        procs[victim].kill()
    results = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
        results.append(ProcessResult(p.returncode, out, err))
    return results
