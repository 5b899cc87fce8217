"""Sweeps: every grid point and seed of the float hyperparameters in one vmapped program;
a static `Config` field compiles one program per value."""
from __future__ import annotations

import dataclasses
import itertools
import json
import os
import warnings
from typing import Dict, List, Sequence

import numpy as np

from jaxmbrl.run import _config, _plots, _runner
from jaxmbrl.run._config import UsageError


def parse_grid(algo_name: str, algo, config, hparams, grids: Dict[str, str]):
    """Splits `field=v1,v2` grids into static-config values and hparam values (typed)."""
    static, swept = {}, {}
    for name, text in grids.items():
        where, _ = _config.check_field(algo_name, algo, name)
        default = getattr(config, name) if where == "config" else getattr(hparams, name)
        # Tuple fields take ';' between values (their items are comma separated).
        parts = text.split(";") if isinstance(default, tuple) else text.split(",")
        values = [_config._parse(name, v, default) for v in parts if v.strip()]
        if not values:
            raise UsageError(f"--grid {name}= needs at least one value.")
        (static if where == "config" else swept)[name] = values
    return static, swept


def _label(assignments: Dict[str, object]) -> str:
    return " ".join(f"{k}={v}" for k, v in assignments.items()) or "default"


def sweep(algo_name: str, config, hparams, grids: Dict[str, str], out_dir: str,
          options: _runner.RunOptions, log=print) -> List[dict]:
    algo = _config.get_algorithm(algo_name)
    static, swept = parse_grid(algo_name, algo, config, hparams, grids)
    hp_names = list(swept)
    hp_assignments = [dict(zip(hp_names, combo)) for combo in itertools.product(*swept.values())] or [{}]
    hp_points = [hparams._replace(**a) for a in hp_assignments]
    static_names = list(static)
    static_assignments = [dict(zip(static_names, c)) for c in itertools.product(*static.values())] or [{}]
    if static_names:
        log(f"{', '.join(static_names)} {'is a' if len(static_names) == 1 else 'are'} static Config "
            f"field(s): compiling one program per value ({len(static_assignments)} programs).")
    log(f"{len(hp_points)} hyperparameter point(s) x {options.seeds} seed(s) per program, vmapped.")
    os.makedirs(out_dir, exist_ok=True)
    run_dirs, summary = [], []
    for i, assignment in enumerate(static_assignments):
        cfg = dataclasses.replace(config, **assignment)
        sub = os.path.join(out_dir, f"program_{i}") if static_names else out_dir
        labels = [_label({**assignment, **a}) for a in hp_assignments]
        result = _runner.run(algo_name, cfg, hp_points, sub, options, point_labels=labels)
        run_dirs.append(sub)
        for point, (_, values) in sorted(_plots.curves(result.rows).items()):
            summary.append(_point_summary(labels[point], values))
    _write_summary(out_dir, summary)
    _plots.learning_curves(run_dirs, os.path.join(out_dir, "sweep.png"), labels=[""] * len(run_dirs),
                           title=f"{algo_name} sweep on {getattr(config, 'env_id', '')}")
    return summary


def _point_summary(label: str, values: np.ndarray) -> dict:
    """values [seeds, iterations] of episode returns (NaN where none finished)."""
    with warnings.catch_warnings():  # all-NaN slices (no finished episode) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        per_iter = np.nanmean(values, 0)
        finite = values[:, ~np.isnan(per_iter)] if np.isfinite(per_iter).any() else values
        final = finite[:, -1]
        return {
            "point": label,
            "seeds": int(values.shape[0]),
            "mean_return": float(np.nanmean(values)),
            "std_return": float(np.nanstd(np.nanmean(values, 1))),
            "final_return": float(np.nanmean(final)),
            "final_std": float(np.nanstd(final)),
            "best_return": float(np.nanmax(per_iter)),
        }


def _write_summary(out_dir: str, rows: Sequence[dict]) -> None:
    if not rows:
        return
    keys = list(rows[0])
    with open(os.path.join(out_dir, "summary.csv"), "w") as f:
        f.write(",".join(keys) + "\n")
        for r in rows:
            f.write(",".join(str(r[k]) for k in keys) + "\n")
    fmt = lambda v: f"{v:.1f}" if isinstance(v, float) else str(v)
    with open(os.path.join(out_dir, "summary.md"), "w") as f:
        f.write("| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n")
        for r in rows:
            f.write("| " + " | ".join(fmt(r[k]) for k in keys) + " |\n")
    with open(os.path.join(out_dir, "sweep_summary.json"), "w") as f:
        json.dump(list(rows), f, indent=2)
