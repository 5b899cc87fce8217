"""Sweeps: every grid point and seed of the float hyperparameters in one vmapped program;
a static `Config` field compiles one program per value."""
from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import warnings
from typing import Dict, List, Sequence

import numpy as np

from jaxmbrl.run import _config, _distributed, _files, _plots, _runner
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


def _programs(config, hp_points, static_assignments):
    """The config of every static grid value, each checked with every sweep point,
    so that a bad value fails before anything runs (not when its program starts)."""
    configs = []
    for assignment in static_assignments:
        try:
            cfg = dataclasses.replace(config, **assignment)
            cfg.validate()
            for hp in hp_points:
                cfg.validate_hparams(hp)
        except ValueError as err:
            where = f"--grid {_label(assignment)}: " if assignment else ""
            raise UsageError(f"{where}{str(err).splitlines()[0]}"[:300]) from None
        configs.append(cfg)
    return configs


def sweep(algo_name: str, config, hparams, grids: Dict[str, str], out_dir: str,
          options: _runner.RunOptions, log=print) -> List[dict]:
    """Runs every grid point; returns one summary row per point, each with its "status"
    ("completed", "interrupted", "diverged" or "not run": a signal stops the whole sweep)."""
    algo = _config.get_algorithm(algo_name)
    static, swept = parse_grid(algo_name, algo, config, hparams, grids)
    hp_names = list(swept)
    hp_assignments = [dict(zip(hp_names, combo)) for combo in itertools.product(*swept.values())] or [{}]
    hp_points = [hparams._replace(**a) for a in hp_assignments]
    static_names = list(static)
    static_assignments = [dict(zip(static_names, c)) for c in itertools.product(*static.values())] or [{}]
    configs = _programs(config, hp_points, static_assignments)
    exists = _files.check_out_dir(out_dir)
    if options.resume and not exists:
        raise UsageError(f"nothing to resume: {out_dir} does not exist.")
    if not options.resume and os.path.exists(os.path.join(out_dir, "sweep_summary.json")):
        raise UsageError(f"{out_dir} already holds a sweep; pass --resume to continue it or choose another --out.")
    if static_names:
        log(f"{', '.join(static_names)} {'is a' if len(static_names) == 1 else 'are'} static Config "
            f"field(s): compiling one program per value ({len(static_assignments)} programs).")
    log(f"{len(hp_points)} hyperparameter point(s) x {options.seeds} seed(s) per program, vmapped.")
    run_dirs, summary = [], []
    primary = _distributed.is_primary()  # the one writer of a multi-process sweep's folder
    with _files.RunLock(out_dir) if primary else contextlib.nullcontext():
        stopped = False
        for i, (assignment, cfg) in enumerate(zip(static_assignments, configs)):
            sub = os.path.join(out_dir, f"program_{i}") if static_names else out_dir
            labels = [_label({**assignment, **a}) for a in hp_assignments]
            if stopped:
                summary += [_point_summary(label, np.full((options.seeds, 1), np.nan), "not run", 0) for label in labels]
                continue
            # A program that a stopped sweep never reached has no folder yet: it starts afresh.
            fresh = options.resume and static_names and not os.path.exists(sub)
            result = _runner.run(algo_name, cfg, hp_points, sub, dataclasses.replace(options, resume=options.resume and not fresh),
                                 point_labels=labels)
            run_dirs.append(sub)
            curves = _plots.curves(result.rows)
            for point, label in enumerate(labels):
                values = curves[point][1] if point in curves else np.full((options.seeds, 1), np.nan)
                summary.append(_point_summary(label, values, result.status, result.summary["iterations"]))
            stopped = result.status == "interrupted"
        if primary:
            _write_summary(out_dir, summary)
        if run_dirs and primary:
            _plots.learning_curves(run_dirs, os.path.join(out_dir, "sweep.png"), labels=[""] * len(run_dirs),
                                   title=f"{algo_name} sweep on {getattr(config, 'env_id', '')}")
    return summary


def _point_summary(label: str, values: np.ndarray, status: str, iterations: int) -> dict:
    """values [seeds, iterations] of episode returns (NaN where none finished)."""
    with warnings.catch_warnings():  # all-NaN slices (no finished episode) are expected
        warnings.simplefilter("ignore", RuntimeWarning)
        per_iter = np.nanmean(values, 0)
        finite = values[:, ~np.isnan(per_iter)] if np.isfinite(per_iter).any() else values
        final = finite[:, -1]
        return {
            "point": label,
            "status": status,
            "iterations": int(iterations),
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
    csv = ",".join(keys) + "\n" + "".join(",".join(str(r[k]) for k in keys) + "\n" for r in rows)
    _files.write_atomic(os.path.join(out_dir, "summary.csv"), csv)
    fmt = lambda v: f"{v:.1f}" if isinstance(v, float) else str(v)
    md = "| " + " | ".join(keys) + " |\n|" + "---|" * len(keys) + "\n"
    md += "".join("| " + " | ".join(fmt(r[k]) for k in keys) + " |\n" for r in rows)
    _files.write_atomic(os.path.join(out_dir, "summary.md"), md)
    # NaN (no finished episode) as null: JSON has no NaN.
    plain = [{k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in r.items()} for r in rows]
    _files.write_json(os.path.join(out_dir, "sweep_summary.json"), plain)
