"""One process against two on this machine: the same batch of seeds, the same result.

Runs `jaxmbrl train ALGO` over `--seeds` seeds three ways, each from a fresh process:
one process with D devices, and two processes on localhost with D/2 devices each (the
batch sharded over the global mesh of D devices). Prints each run's wall time, compile
time and steady env steps/s (from summary.json) and whether their metrics.jsonl are
identical. On one 2-core host the two processes share the same cores, so this measures
the overhead of the multi-process runtime (gathers of metrics and checkpoints over
localhost), not a speed-up; on a cluster each process brings its own host.

    python scripts/scaling_localhost.py [--algo pets] [--seeds 8] [--devices 4] [--set field=value ...]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import _common
from jaxmbrl.testing import launch_local, process_env


def summary(folder: str) -> dict:
    s = json.load(open(os.path.join(folder, "summary.json")))
    return {k: s.get(k) for k in ("status", "iterations", "batch", "devices", "wall_s", "compile_s",
                                  "steady_env_steps_per_s")}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", default="pets")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--devices", type=int, default=4)
    parser.add_argument("--set", nargs="+", default=["num_iterations=6", "steps_per_iteration=100"])
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    argv = ["train", args.algo, "--preset", args.preset, "--no-progress", "--seeds", str(args.seeds),
            "--set", *args.set]
    with tempfile.TemporaryDirectory() as tmp:
        one, two = os.path.join(tmp, "one"), os.path.join(tmp, "two")
        t = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "jaxmbrl", *argv, "--out", one],
                              env=process_env(args.devices), capture_output=True, text=True)
        one_wall = time.perf_counter() - t
        if done.returncode:
            sys.exit(done.stderr[-2000:])
        t = time.perf_counter()
        results = launch_local([*argv, "--out", two], 2, args.devices // 2, timeout_s=3600)
        two_wall = time.perf_counter() - t
        if any(r.returncode for r in results):
            sys.exit("\n".join(r.stderr[-2000:] for r in results))
        out = {
            "machine": _common.machine(),
            "command": f"jaxmbrl {' '.join(argv)}",
            "one_process": {"devices": args.devices, "process_wall_s": round(one_wall, 1), **summary(one)},
            "two_processes": {"devices_per_process": args.devices // 2, "process_wall_s": round(two_wall, 1),
                              **summary(two)},
            "identical_metrics": open(os.path.join(one, "metrics.jsonl")).read()
            == open(os.path.join(two, "metrics.jsonl")).read(),
        }
    print(json.dumps(out, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
