"""MBPO against SAC on a Brax task: greedy evaluation return against real env steps.

Each runs as one compiled, seed-vmapped `mbpo.make_train(...)` program, one iteration per
call (a progress bar follows). SAC is the same program with `real_ratio = 1` (every SAC
batch is real data: the model is never read, so it is shrunk to a token size) and SAC's
usual one update per env step: same networks, same seeds, same exploration. SAC runs
`--sac-factor` times MBPO's budget, to find the env steps it needs to reach MBPO's return.
Each curve in `--json` keeps, per seed and iteration, the evaluation return, the last
refit's epochs and `DIAGNOSTICS` (Q mean, critic loss, temperature, entropy, model holdout
MSE), so a collapse can be traced to the critic, the temperature or the model.

MBPO follows Janner et al. (2019) and mbrl-lib's MuJoCo configs (7/5 ensemble of
4 x 200 SiLU, model refit every 250 steps, 400 rollouts per step, 5% real data, 1,000-step
epochs; on hopper and halfcheetah also target entropy -1 (Janner et al.'s Hopper and
mbrl-lib 0.2.0's HalfCheetah value; Janner et al. set -3 on HalfCheetah) and one epoch,
4 refits, of kept model rollouts) except where a 2-core CPU cannot afford it, said per task in
`BUDGETS` and in docs/BENCHMARKS.md: fewer SAC updates per step (the paper: 20 on Hopper, 40 on
HalfCheetah) and a shorter run. A GPU run would take the paper's updates per step and
budgets (Hopper 125k, HalfCheetah 400k env steps) with `--set policy_updates_per_step=20
--env-steps 125000`.

    python scripts/brax_mbpo_vs_sac.py --env brax/inverted_pendulum --seeds 5
    python scripts/brax_mbpo_vs_sac.py --env brax/hopper --seeds 2 --env-steps 20000
    # the two halves apart (e.g. each on its own core), then one result:
    python scripts/brax_mbpo_vs_sac.py --env brax/halfcheetah --only mbpo --json mbpo.json
    python scripts/brax_mbpo_vs_sac.py --env brax/halfcheetah --only sac --json sac.json
    python scripts/brax_mbpo_vs_sac.py --merge mbpo.json sac.json --json docs/brax_halfcheetah.json
    # or one seed per core (`--seed` picks the seed): the MBPO files' seeds join
    python scripts/brax_mbpo_vs_sac.py --env brax/hopper --seeds 1 --seed 1 --only mbpo --json mbpo1.json
    python scripts/brax_mbpo_vs_sac.py --merge mbpo0.json mbpo1.json sac.json --json hopper.json
"""
from __future__ import annotations

import argparse
import json

import numpy as np

import _common
from jaxmbrl import run
from jaxmbrl.algorithms import mbpo

# Per task: MBPO's budget in env steps and the Config fields that differ from mbpo.Config.
BUDGETS = {
    # Janner et al.'s InvertedPendulum config: 250-step epochs, 10 SAC updates per step,
    # target entropy -0.05; here 500 random steps first.
    "brax/inverted_pendulum": (5000, dict(steps_per_iteration=250, warmup_iterations=2, model_train_every=250,
                                          rollouts_per_step=400, policy_updates_per_step=10, target_entropy=-0.05,
                                          model_hidden_sizes=(200, 200, 200))),
    "brax/reacher": (10000, dict(steps_per_iteration=1000, warmup_iterations=1, model_train_every=250,
                                 policy_updates_per_step=10)),
    # Hopper's schedule (20, 100, 1, 15) keeps k = 1 for its first 20 epochs, the whole of a
    # 20k budget: a constant k = 1 compiles a 1-step rollout instead of a masked 15-step one.
    # Janner et al.'s Hopper config: target entropy -1 and one epoch (4 refits) of model
    # rollouts kept; until 2026-12-04 this ran with -A = -3 and 1 refit (BENCHMARKS.md).
    "brax/hopper": (20000, dict(steps_per_iteration=1000, warmup_iterations=5, model_train_every=250,
                                rollout_schedule=(1, 15, 1, 1), policy_updates_per_step=10,
                                target_entropy=-1.0, model_retain_blocks=4)),
    # mbrl-lib 0.2.0's HalfCheetah config: target entropy -1 (Janner et al.'s: -3), one epoch
    # of model rollouts kept (until 2026-12-04: -A = -6 and 1 refit).
    "brax/halfcheetah": (20000, dict(steps_per_iteration=1000, warmup_iterations=5, model_train_every=250,
                                     policy_updates_per_step=10, target_entropy=-1.0, model_retain_blocks=4)),
}
# Without a budget of its own a task takes hopper's, less its task-specific target entropy.
DEFAULT_TASK = "brax/hopper"


# Metrics kept beside the evaluation returns (mbpo.Metrics fields).
DIAGNOSTICS = ("q_mean", "critic_loss", "alpha", "entropy", "model_holdout_mse")


def curve(name, cfg, hparams, seeds, seed):
    train = mbpo.make_train(cfg)
    table, wall, compile_s = _common.run_seeds(train, cfg, seeds, seed, desc=name, hparams=hparams,
                                               postfix="eval_return")
    steps = table["env_steps"][0]
    evals = table["eval_return"]  # [seeds, iterations], NaN while exploring
    # The last refit's epochs, the most any member trained (NaN without a model): at
    # `model_epochs` the cap, not early stopping, ended it.
    epochs = table["model_fit_epochs"]
    fitted = not np.isnan(epochs).all()
    print(f"\n## {name}: {seeds} seeds, {wall:.0f} s wall ({compile_s:.0f} s compile and first iteration)")
    print("| env steps | eval return mean | min | max |" + (" model fit epochs, per seed |" if fitted else ""))
    print("|---:|---:|---:|---:|" + ("---|" if fitted else ""))
    for i, n in enumerate(steps):
        if not np.isnan(evals[:, i]).all():
            fit_text = f" {', '.join(f'{e:.0f}' for e in epochs[:, i])} |" if fitted else ""
            print(f"| {n} | {evals[:, i].mean():.1f} | {evals[:, i].min():.1f} | {evals[:, i].max():.1f} |{fit_text}")
    out = {"env_steps": steps.tolist(), "eval_return": np.round(evals, 1).tolist(), "wall_s": round(wall, 1),
           "compile_and_first_iteration_s": round(compile_s, 1)}
    if fitted:
        out["model_fit_epochs"] = np.where(np.isnan(epochs), None, epochs).tolist()
    # Per seed and iteration, to tell a collapsing policy's cause (critic, temperature or
    # model) from the curves alone; NaN (null) while exploring.
    out["diagnostics"] = {field: np.where(np.isnan(table[field]), None, np.round(table[field], 4)).tolist()
                          for field in DIAGNOSTICS}
    return out


def first_reaching(result, value, per_seed=False):
    """Env steps at which the mean (or each seed's) evaluation return first reaches `value`."""
    steps, evals = np.asarray(result["env_steps"]), np.asarray(result["eval_return"], np.float64)
    rows = evals if per_seed else evals.mean(0, keepdims=True)
    out = []
    for row in rows:
        hit = np.flatnonzero(np.nan_to_num(row, nan=-np.inf) >= value)
        out.append(int(steps[hit[0]]) if hit.size else None)
    return out if per_seed else out[0]


# MBPO's last evaluations averaged for a steadier second ratio: with 2 seeds and 3
# episodes the final one alone swings by hundreds on hopper and halfcheetah.
LAST_EVALS = 6


def summary(result, budget):
    """MBPO's final return, SAC's at MBPO's budget, and the SAC steps to reach MBPO's
    (its final evaluation's and the mean of its last `LAST_EVALS`)."""
    mbpo_mean = np.mean(result["mbpo"]["eval_return"], 0)
    mbpo_final = float(mbpo_mean[-1])
    # Exploration iterations evaluate nothing (NaN): a short run averages what it has.
    evaluated = mbpo_mean[~np.isnan(mbpo_mean)]
    mbpo_last = float(np.mean(evaluated[-LAST_EVALS:]))
    sac = result["sac"]
    at_budget = np.asarray(sac["eval_return"])[:, np.asarray(sac["env_steps"]) == budget]
    needed = first_reaching(sac, mbpo_final)
    needed_last = first_reaching(sac, mbpo_last)
    return {
        "mbpo_env_steps": budget,
        "mbpo_final_eval_return": round(mbpo_final, 1),
        "sac_eval_return_at_mbpo_budget": round(float(at_budget.mean()), 1) if at_budget.size else None,
        "sac_env_steps_to_mbpo_return": needed,
        "ratio_mbpo_to_sac_steps": round(budget / needed, 3) if needed else None,
        f"mbpo_mean_of_last_{LAST_EVALS}_eval_returns": round(mbpo_last, 1),
        "sac_env_steps_to_that_mean": needed_last,
        "ratio_at_that_mean": round(budget / needed_last, 3) if needed_last else None,
        "sac_env_steps_run": int(sac["env_steps"][-1]),
    }


def _join_seeds(first, second, name):
    """One curve from two runs of the same program on different seeds (e.g. one seed per
    core): per-seed rows concatenate, each part keeps its wall time."""
    if first["env_steps"] != second["env_steps"]:
        raise SystemExit(f"--merge: the {name} curves have different env steps; merge runs of the same budget")
    joined = dict(first)
    for key in ("eval_return", "model_fit_epochs", "first_steps_to_target_per_seed"):
        if key in first and key in second:
            joined[key] = first[key] + second[key]
    if "diagnostics" in first and "diagnostics" in second:
        joined["diagnostics"] = {k: first["diagnostics"][k] + second["diagnostics"][k]
                                 for k in first["diagnostics"] if k in second["diagnostics"]}
    else:  # a part from before diagnostics were kept: the joined curve has none
        joined.pop("diagnostics", None)
    for key in ("wall_s", "compile_and_first_iteration_s"):
        joined[key] = [*np.atleast_1d(first[key]).tolist(), *np.atleast_1d(second[key]).tolist()]
    if first.get("machine") != second.get("machine"):
        joined["machine"] = f"{first.get('machine')}; {second.get('machine')}"
    return joined


def _sac_hparams(hp):
    """SAC is MBPO with every batch real, whatever real-ratio schedule `--set` gives."""
    return hp._replace(real_ratio=1.0, real_ratio_end=1.0)


def _default_hparams(name):
    """The HParams a curve ran with before the JSON kept them: until 2026-12-07 this
    script passed the defaults whatever `--set` said (SAC: with real_ratio 1)."""
    hp = mbpo.HParams()
    return _common.plain_hparams(_sac_hparams(hp) if name == "sac" else hp)


def _filled(name, config, hparams):
    """A curve's config and hparams with the fields added since it ran at their defaults,
    which are what it ran with (e.g. real_ratio_decay_steps=0, a constant real_ratio)."""
    return ({**_common.plain_config(mbpo.Config()), **config}, {**_default_hparams(name), **hparams})


def merge(paths, out):
    """One result from `--only mbpo` and `--only sac` runs' JSON files (run apart, e.g. each
    pinned to its own core), with the summary of a `--only both` run. Several files with
    the same curve are seeds of one setting: their seeds concatenate (same config only)."""
    result = {}
    for path in paths:
        with open(path) as f:
            part = json.load(f)
        for name in ("mbpo", "sac"):
            if name not in part:
                continue
            # A curve travels with its config and the machine it ran on.
            curve_part = dict(part[name], machine=part[name].get("machine", part.get("machine")))
            config, hparams = _filled(name, part[f"{name}_config"], part.get(f"{name}_hparams", {}))
            if name in result:
                if (result[f"{name}_config"], result[f"{name}_hparams"]) != (config, hparams):
                    raise SystemExit(f"--merge: {path}'s {name} config or hparams differ from an earlier "
                                     "file's; only seeds of one setting join")
                curve_part = _join_seeds(result[name], curve_part, name)
            result[name] = curve_part
            result[f"{name}_config"] = config
            result[f"{name}_hparams"] = hparams
        result.update({k: v for k, v in part.items() if k not in result})
    if "mbpo" in result and "sac" in result and result["mbpo"]["machine"] != result["sac"]["machine"]:
        result["machine"] = f"MBPO: {result['mbpo']['machine']}; SAC: {result['sac']['machine']}"
    result["summary"] = summary(result, int(result["mbpo"]["env_steps"][-1]))
    print(json.dumps(result["summary"], indent=1))
    if out:
        with open(out, "w") as f:
            json.dump(result, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _common.add_brax_arguments(parser)
    parser.add_argument("--env-steps", type=int, default=0, help="MBPO's budget (0: the task's in BUDGETS)")
    parser.add_argument("--sac-factor", type=int, default=5, help="SAC runs this many times MBPO's budget")
    parser.add_argument("--target", type=float, default=None, help="also report steps to this return")
    parser.add_argument("--only", choices=("mbpo", "sac", "both"), default="both")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="mbpo.Config or mbpo.HParams overrides")
    parser.add_argument("--json", default="", help="write the result here too")
    parser.add_argument("--merge", nargs="+", default=None, metavar="JSON",
                        help="only merge the JSON files of --only mbpo and --only sac runs (into --json); "
                             "files with the same curve and config join their seeds")
    args = parser.parse_args()
    if args.merge:
        return merge(args.merge, args.json)
    if args.env in BUDGETS:
        budget, fields = BUDGETS[args.env]
    else:
        budget, fields = BUDGETS[DEFAULT_TASK]
        fields = {k: v for k, v in fields.items() if k != "target_entropy"}
    budget = args.env_steps or budget
    fields = {**fields, "env_id": args.env, "env_kwargs": {"backend": args.backend},
              **run._config.parse_assignments(args.set)}
    per_iteration = int(fields["steps_per_iteration"])
    # `--set` takes HParams fields too (critic_learning_rate=1e-4): both curves run with them,
    # except that SAC keeps real_ratio = 1 throughout.
    _, cfg, hp = run.resolve("mbpo", overrides={**fields, "num_iterations": budget // per_iteration})
    result = {"machine": _common.machine(), "mbpo_config": _common.plain_config(cfg),
              "mbpo_hparams": _common.plain_hparams(hp)}
    print(f"machine: {result['machine']}")
    if args.only in ("mbpo", "both"):
        result["mbpo"] = curve(f"MBPO {args.env}", cfg, hp, args.seeds, args.seed)
    if args.only in ("sac", "both"):
        sac_fields = dict(fields, num_iterations=args.sac_factor * budget // per_iteration, policy_updates_per_step=1,
                          rollouts_per_step=1, num_members=1, num_model_elites=1, model_hidden_sizes=(8,),
                          model_epochs=1)
        _, sac_cfg, sac_hp = run.resolve("mbpo", overrides=sac_fields)
        sac_hp = _sac_hparams(sac_hp)
        result["sac_config"] = _common.plain_config(sac_cfg)
        result["sac_hparams"] = _common.plain_hparams(sac_hp)
        result["sac"] = curve(f"SAC {args.env}", sac_cfg, sac_hp, args.seeds, args.seed)
    if "mbpo" in result and "sac" in result:
        result["summary"] = summary(result, budget)
    if args.target is not None:
        for name in ("mbpo", "sac"):
            if name in result:
                result[name]["first_steps_to_target_per_seed"] = first_reaching(result[name], args.target, True)
    print(json.dumps({k: v for k, v in result.items() if k.endswith("summary") or k == "machine"}, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)


if __name__ == "__main__":
    main()
