"""Learning-curve plots from run folders (matplotlib, headless)."""
from __future__ import annotations

import difflib
import os
import warnings
from collections import defaultdict
from typing import Dict, List, Optional, Sequence

import numpy as np

from jaxmbrl.run import _files
from jaxmbrl.run._config import UsageError

NOT_METRICS = ("point", "seed", "iteration")


def read_rows(run_dir: str) -> List[dict]:
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{run_dir} has no metrics.jsonl: is it a jaxmbrl run folder?")
    return _files.read_jsonl(path)


def curves(rows: List[dict], metric: str = "episode_return", x: str = "env_steps"):
    """point -> (x [iters], values [seeds, iters]) with NaN where a value is missing."""
    by_point: Dict[int, Dict[int, Dict[int, float]]] = defaultdict(lambda: defaultdict(dict))
    xs: Dict[int, Dict[int, float]] = defaultdict(dict)
    for r in rows:
        by_point[r["point"]][r["seed"]][r["iteration"]] = _files.decode_value(r.get(metric))
        xs[r["point"]][r["iteration"]] = _files.decode_value(r.get(x, r["iteration"]))
    out = {}
    for point, seeds in by_point.items():
        iters = sorted(xs[point])
        values = np.array([[seeds[s].get(i, np.nan) for i in iters] for s in sorted(seeds)], float)
        out[point] = (np.array([xs[point][i] for i in iters], float), values)
    return out


def png_path(out: str, default_name: str = "learning_curves.png") -> str:
    """Where a plot goes: into a folder given as --out, `.png` added to a bare name."""
    if os.path.isdir(out):
        return os.path.join(out, default_name)
    root, ext = os.path.splitext(out)
    if not ext:
        return out + ".png"
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    supported = FigureCanvasAgg.get_supported_filetypes()
    if ext[1:].lower() not in supported:
        raise UsageError(f"--out {_files.short(out, 80)}: matplotlib cannot write .{ext[1:]} files; "
                         f"use one of {', '.join('.' + e for e in sorted(supported))}.")
    return out


def _check_metric(metric: str, run_dirs: Sequence[str], tables: Sequence[List[dict]]) -> None:
    names = sorted({k for rows in tables for r in rows[:50] for k in r if k not in NOT_METRICS})
    if any(metric in r for rows in tables for r in rows[:50]):
        return
    near = difflib.get_close_matches(metric, names, n=1)
    hint = f" Did you mean {near[0]}?" if near else ""
    raise UsageError(f"no run logs a metric {_files.short(metric, 40)}.{hint} Metrics: {', '.join(names)}.")


def learning_curves(run_dirs: Sequence[str], png: str, metric: str = "episode_return",
                    labels: Optional[Sequence[str]] = None, title: Optional[str] = None) -> str:
    """One line per run and sweep point: mean over seeds with a min-max band.

    Returns the path written. Runs of different algorithms or environments are named
    as such in the legend and title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    png = png_path(png)
    tables = [read_rows(d) for d in run_dirs]
    metas = [_meta(d) for d in run_dirs]
    _check_metric(metric, run_dirs, tables)
    algos = sorted({m.get("algorithm", "?") for m in metas})
    envs = sorted({str((m.get("config") or {}).get("env_id", "?")) for m in metas})
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for i, (run_dir, rows, meta) in enumerate(zip(run_dirs, tables, metas)):
        point_labels = meta.get("point_labels") or []
        for point, (x, values) in sorted(curves(rows, metric).items()):
            if np.isnan(values).all():
                continue
            label = labels[i] if labels else os.path.basename(os.path.normpath(run_dir))
            if len(algos) > 1 or len(envs) > 1:
                label = f"{label} [{meta.get('algorithm', '?')}, {(meta.get('config') or {}).get('env_id', '?')}]"
            if point < len(point_labels):
                label = f"{label} {point_labels[point]}"
            with warnings.catch_warnings():  # iterations where no episode finished are NaN
                warnings.simplefilter("ignore", RuntimeWarning)
                mean = np.nanmean(values, 0)
            n = values.shape[0]
            ax.plot(x, mean, marker="o", ms=3, label=f"{label} ({n} seed{'s' if n > 1 else ''})")
            if values.shape[0] > 1:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    ax.fill_between(x, np.nanmin(values, 0), np.nanmax(values, 0), alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(title or f"{' vs '.join(algos)} on {' / '.join(envs)}")
    ax.grid(alpha=0.3)
    if ax.lines:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, f"no finite {metric} yet", ha="center", va="center", transform=ax.transAxes)
    fig.tight_layout()
    # Drawn beside it, then renamed: a curve refreshed while a run goes is never half written.
    partial = os.path.join(os.path.dirname(os.path.abspath(png)), "." + os.path.basename(png))
    try:
        fig.savefig(partial, dpi=100)
        os.replace(partial, png)
    except OSError as err:
        raise UsageError(f"cannot write {_files.short(png, 80)}: {err.strerror or err}.") from None
    finally:
        plt.close(fig)
    return png


def _meta(run_dir: str) -> dict:
    path = os.path.join(run_dir, "config.json")
    if not os.path.exists(path):
        return {}
    try:
        return _files.read_meta(path)
    except UsageError:
        return {}
