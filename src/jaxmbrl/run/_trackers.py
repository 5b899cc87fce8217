"""Experiment trackers beside the run folder's own files: TensorBoard and Weights & Biases.

Both are optional extras and only mirror what `metrics.jsonl` holds (the folder stays
the record a resume is checked against). One scalar per metric, point and seed, tagged
`METRIC/pP_sS`, at the step of the iteration, so that a sweep's points and seeds are
curves in one chart. A tracker is `log(rows)` after every chunk and `close()` at the end.
"""
from __future__ import annotations

import collections
import glob
import os
from typing import Any, Dict, List, Optional, Sequence

from jaxmbrl.run._config import UsageError

_KEYS = ("point", "seed", "iteration")
WANDB_ID_FILE = "wandb_id.txt"


def require(tensorboard: bool, wandb_project: Optional[str]) -> None:
    """One-line errors for a tracker asked for without its package (before any file is written)."""
    if tensorboard:
        try:
            import tensorboardX  # noqa: F401
        except ImportError:
            raise UsageError("--tensorboard needs tensorboardX: pip install 'jaxmbrl[tensorboard]'.") from None
    if wandb_project is not None:
        if not wandb_project.strip() or "/" in wandb_project:
            raise UsageError(f"--wandb {wandb_project!r} is not a W&B project name (no '/', not empty).")
        try:
            import wandb  # noqa: F401
        except ImportError:
            raise UsageError("--wandb needs wandb: pip install 'jaxmbrl[wandb]'.") from None


def scalars_by_iteration(rows: Sequence[Dict[str, Any]]) -> Dict[int, Dict[str, float]]:
    """{iteration: {"METRIC/pP_sS": value}} of the numeric fields of metric rows."""
    out: Dict[int, Dict[str, float]] = collections.defaultdict(dict)
    for row in rows:
        tag = f"p{row['point']}_s{row['seed']}"
        for k, v in row.items():
            if k not in _KEYS and isinstance(v, (int, float)) and not isinstance(v, bool):
                out[int(row["iteration"])][f"{k}/{tag}"] = float(v)
    return dict(out)


class TensorBoard:
    """Event files under `RUN/tensorboard` (a resume appends a new file to the same folder)."""

    def __init__(self, out_dir: str):
        from tensorboardX import SummaryWriter

        folder = os.path.join(out_dir, "tensorboard")
        # tensorboardX names a file by the second it opens and the host, so a resume within the
        # same second would overwrite the first part's events; a part number keeps them apart.
        part = len(glob.glob(os.path.join(folder, "events.out.tfevents.*")))
        self._writer = SummaryWriter(folder, filename_suffix=f".part{part}")

    def log(self, rows) -> None:
        for iteration, values in sorted(scalars_by_iteration(rows).items()):
            for tag, value in values.items():
                self._writer.add_scalar(tag, value, iteration)
        self._writer.flush()

    def close(self) -> None:
        self._writer.close()


class WandB:
    """One W&B run per run folder, under `RUN/wandb`; a resume continues the same W&B run.

    Honours W&B's own environment (`WANDB_MODE=offline`, `WANDB_API_KEY`, ...).
    """

    def __init__(self, out_dir: str, project: str, config: Dict[str, Any], resume: bool):
        import wandb

        id_path = os.path.join(out_dir, WANDB_ID_FILE)
        run_id = open(id_path).read().strip() if resume and os.path.exists(id_path) else None
        self._run = wandb.init(project=project, dir=out_dir, id=run_id, resume="allow" if run_id else None,
                               config=config, name=os.path.basename(os.path.abspath(out_dir)))
        with open(id_path, "w") as f:
            f.write(self._run.id + "\n")

    def log(self, rows) -> None:
        for iteration, values in sorted(scalars_by_iteration(rows).items()):
            self._run.log(values, step=iteration)

    def close(self) -> None:
        self._run.finish()


def open_trackers(out_dir: str, tensorboard: bool, wandb_project: Optional[str], config: Dict[str, Any],
                  resume: bool) -> List[Any]:
    trackers: List[Any] = []
    if tensorboard:
        trackers.append(TensorBoard(out_dir))
    if wandb_project is not None:
        trackers.append(WandB(out_dir, wandb_project, config, resume))
    return trackers
