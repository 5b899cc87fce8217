"""Learning-curve plots from run folders (matplotlib, headless)."""
from __future__ import annotations

import json
import os
import warnings
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np


def read_rows(run_dir: str) -> List[dict]:
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} has no metrics.jsonl: is it a jaxmbrl run folder?")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def curves(rows: List[dict], metric: str = "episode_return", x: str = "env_steps"):
    """point -> (x [iters], values [seeds, iters]) with NaN where a value is missing."""
    by_point: Dict[int, Dict[int, Dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    xs: Dict[int, Dict[int, float]] = defaultdict(dict)
    for r in rows:
        value = r.get(metric)
        by_point[r["point"]][r["seed"]][r["iteration"]] = np.nan if value is None else value
        xs[r["point"]][r["iteration"]] = r.get(x, r["iteration"])
    out = {}
    for point, seeds in by_point.items():
        iters = sorted(xs[point])
        values = np.array([[seeds[s].get(i, np.nan) for i in iters] for s in sorted(seeds)], float)
        out[point] = (np.array([xs[point][i] for i in iters], float), values)
    return out


def learning_curves(run_dirs: Sequence[str], png: str, metric: str = "episode_return",
                    labels: Optional[Sequence[str]] = None, title: Optional[str] = None) -> str:
    """One line per run and sweep point: mean over seeds with a min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, run_dir in enumerate(run_dirs):
        meta = _meta(run_dir)
        point_labels = meta.get("point_labels") or []
        for point, (x, values) in sorted(curves(read_rows(run_dir), metric).items()):
            if np.isnan(values).all():
                continue
            label = labels[i] if labels else os.path.basename(os.path.normpath(run_dir))
            if point_labels:
                label = f"{label} {point_labels[point]}"
            with warnings.catch_warnings():  # iterations where no episode finished are NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(values, 0)
            n = values.shape[0]
            ax.plot(x, mean, marker="o", ms=3, label=f"{label} ({n} seed{'s' if n > 1 else ''})")
            if values.shape[0] > 1:
                ax.fill_between(x, np.nanmin(values, 0), np.nanmax(values, 0), alpha=0.2)
    meta = _meta(run_dirs[0])
    ax.set_xlabel("env steps")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title or f"{meta.get('algorithm', '')} on {meta.get('config', {}).get('env_id', '')}")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    plt.close(fig)
    return png


def _meta(run_dir: str) -> dict:
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)
