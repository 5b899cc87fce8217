"""The runner: chunked compiled loops, logs, checkpoints, sweeps on devices, plots."""
from jaxmbrl.run._checkpoint import CheckpointError
from jaxmbrl.run._config import UsageError, available_algorithms, get_algorithm, resolve
from jaxmbrl.run._diagnose import diagnose
from jaxmbrl.run._plots import learning_curves
from jaxmbrl.run._render import render
from jaxmbrl.run._runner import RunOptions, RunResult, batch_hparams, batch_keys, run
from jaxmbrl.run._sweep import sweep

__all__ = [
    "CheckpointError",
    "RunOptions",
    "RunResult",
    "UsageError",
    "available_algorithms",
    "batch_hparams",
    "batch_keys",
    "diagnose",
    "get_algorithm",
    "learning_curves",
    "render",
    "resolve",
    "run",
    "sweep",
]
