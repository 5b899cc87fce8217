"""TD-MPC2 on a Brax task beside MBPO and SAC: noise-free evaluation return against env
steps, seeds vmapped in one program.

Budgets and schedule follow `scripts/brax_mbpo_vs_sac.py` (20,000 env steps on hopper
and halfcheetah, 1,000-step iterations, the first 5,000 steps random: TD-MPC2's seed
steps, max(1,000, 5 episodes), are the same 5,000 here), so the curves line up with the
MBPO and SAC ones in `docs/brax_<task>.json`. TD-MPC2 at a 2-core CPU's setting, said
plainly: 128-128 networks (`--small`, as `scripts/tdmpc2_pendulum.py`) and the reduced
planner (4 iterations, 256 samples, 32 elites, 12 policy trajectories, horizon 3); one
update per env step on 256 windows of 3 steps, one evaluation episode per iteration. A
GPU run would drop `--small --reduced` (`tdmpc2.Config()`: 256-wide networks and the
paper's planner, 6 iterations, 512 samples, 64 elites, 24 policy trajectories) and could
widen to the paper's 5M-parameter default (512-wide MLPs, a 512-d latent).

    python scripts/brax_tdmpc2.py --env brax/hopper --seeds 1 --small --reduced --json docs/brax_hopper_tdmpc2.json
    python scripts/brax_tdmpc2.py --table docs/brax_hopper_tdmpc2.json docs/brax_hopper.json

`--table TDMPC2_JSON MBPO_SAC_JSON` only prints the side-by-side table of two results;
`--merge A.json B.json --json OUT` joins the seeds of two runs of the same config (e.g.
`--seed 0` and `--seed 1`, run one per core) into one result.

    python scripts/brax_tdmpc2.py --merge seed0.json seed1.json --json docs/brax_halfcheetah_tdmpc2.json
"""
from __future__ import annotations

import argparse
import json

import numpy as np

import _common
from jaxmbrl import run
from jaxmbrl.algorithms import tdmpc2

REDUCED = dict(planner_samples=256, planner_elites=32, planner_iterations=4, planner_proposals=12)
SMALL = dict(model_hidden_sizes=(128, 128), policy_hidden_sizes=(128, 128))
# Per task: env steps and the Config fields that differ from tdmpc2.Config.
BUDGETS = {
    "brax/hopper": (20000, dict(steps_per_iteration=1000, warmup_iterations=5)),
    "brax/halfcheetah": (20000, dict(steps_per_iteration=1000, warmup_iterations=5)),
    "brax/inverted_pendulum": (5000, dict(steps_per_iteration=500, warmup_iterations=2)),
    "brax/reacher": (10000, dict(steps_per_iteration=1000, warmup_iterations=1)),
}


def table(tdmpc2_path, other_path):
    """Markdown rows: mean evaluation return at TD-MPC2's evaluation steps, beside MBPO's
    and SAC's at the same steps (blank where a run has no evaluation there)."""
    with open(tdmpc2_path) as f:
        ours = json.load(f)
    with open(other_path) as f:
        other = json.load(f)
    curves = {"TD-MPC2": ours["tdmpc2"]}
    curves.update({name.upper(): other[name] for name in ("mbpo", "sac") if name in other})
    steps = [s for s, e in zip(ours["tdmpc2"]["env_steps"], np.mean(ours["tdmpc2"]["eval_return"], 0))
             if not np.isnan(e)]
    print("| env steps | " + " | ".join(f"{s:,}" for s in steps) + " | wall per seed (its whole run) |")
    print("|---|" + "---|" * (len(steps) + 1))
    for name, c in curves.items():
        at = dict(zip(c["env_steps"], np.mean(np.asarray(c["eval_return"], np.float64), 0)))
        cells = [f"{at[s]:.1f}" if s in at and not np.isnan(at[s]) else "" for s in steps]
        seeds = len(c["eval_return"])
        print(f"| {name} ({seeds} seed{'s' if seeds != 1 else ''}) | " + " | ".join(cells)
              + f" | {c['wall_s'] / seeds:,.0f} s for {c['env_steps'][-1]:,} steps |")


def merge(paths, out: str) -> None:
    """One result holding the seeds of several runs (their configs must match); its wall
    is the runs' summed walls, so that the table's per-seed wall stays one run's."""
    runs = []
    for path in paths:
        with open(path) as f:
            runs.append(json.load(f))
    if any(r["config"] != runs[0]["config"] for r in runs[1:]):
        raise SystemExit("brax_tdmpc2.py --merge: the runs' configs differ; merge runs of one config only")
    if any(r["tdmpc2"]["env_steps"] != runs[0]["tdmpc2"]["env_steps"] for r in runs[1:]):
        raise SystemExit("brax_tdmpc2.py --merge: the runs evaluated at different env steps")
    result = dict(runs[0])
    result["machine"] = sorted({r["machine"] for r in runs})
    result["tdmpc2"] = {
        "env_steps": runs[0]["tdmpc2"]["env_steps"],
        "eval_return": [row for r in runs for row in r["tdmpc2"]["eval_return"]],
        "wall_s": round(sum(r["tdmpc2"]["wall_s"] for r in runs), 1),
        "compile_and_first_iteration_s": [r["tdmpc2"]["compile_and_first_iteration_s"] for r in runs],
    }
    if not out:
        raise SystemExit("brax_tdmpc2.py --merge needs --json OUT")
    with open(out, "w") as f:
        json.dump(result, f, indent=1)
    _common.print_eval_table(np.asarray(result["tdmpc2"]["env_steps"]), np.asarray(result["tdmpc2"]["eval_return"]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_brax_arguments(parser, env="brax/hopper")
    parser.add_argument("--env-steps", type=int, default=0, help="budget (0: the task's in BUDGETS)")
    parser.add_argument("--reduced", action="store_true", help="the reduced planner (see the docstring)")
    parser.add_argument("--small", action="store_true", help="128-wide networks (see the docstring)")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop after the iteration past this")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE", help="tdmpc2.Config overrides")
    parser.add_argument("--json", default="")
    parser.add_argument("--table", nargs=2, default=None, metavar=("TDMPC2_JSON", "MBPO_SAC_JSON"))
    parser.add_argument("--merge", nargs="+", default=None, metavar="RUN_JSON",
                        help="only join the seeds of these runs' JSON files (into --json)")
    args = parser.parse_args()
    if args.table:
        return table(*args.table)
    if args.merge:
        return merge(args.merge, args.json)
    budget, fields = BUDGETS.get(args.env, BUDGETS["brax/hopper"])
    budget = args.env_steps or budget
    fields = {**fields, **(REDUCED if args.reduced else {}), **(SMALL if args.small else {}),
              "env_id": args.env, "env_kwargs": {"backend": args.backend}, "num_eval_episodes": 1,
              **run._config.parse_assignments(args.set)}
    fields["num_iterations"] = budget // int(fields["steps_per_iteration"])
    _, cfg, hparams = run.resolve("tdmpc2", overrides=fields)
    train = tdmpc2.make_train(cfg)
    metrics, wall, compile_s = _common.run_seeds(train, cfg, args.seeds, args.seed, desc=f"TD-MPC2 {args.env}",
                                                 hparams=hparams, postfix="eval_return",
                                                 max_seconds=args.max_seconds)
    steps, evals = metrics["env_steps"][0], metrics["eval_return"]
    result = {
        "machine": _common.machine(),
        "config": _common.plain_config(cfg),
        "tdmpc2": {"env_steps": steps.tolist(), "eval_return": np.round(evals, 1).tolist(), "wall_s": round(wall, 1),
                   "compile_and_first_iteration_s": round(compile_s, 1)},
    }
    print(f"machine: {result['machine']}; {wall:.0f} s wall for {args.seeds} seeds "
          f"({compile_s:.0f} s compile and first iteration)")
    _common.print_eval_table(steps, evals)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
