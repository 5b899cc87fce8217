"""Where an algorithm's compiled iteration spends its time, phase by phase.

Each algorithm marks its phases with `jax.named_scope` (env, act, plan, model_fit,
model_rollout, policy_update, eval). This script compiles one iteration (`train.step`),
runs it once to warm up, then once under JAX's profiler, and sums the time of every
operation XLA executed by the outermost phase named in the operation's source path (an
operation outside every phase is "other": buffer writes, logging, bookkeeping). It prints
the compile time and the iteration's wall time beside the table.

    python scripts/profile_phases.py pets mbpo dyna dreamer [--set key=value ...]

The configs are each algorithm's defaults (MBPO's are mbrl-lib's reference settings), on
its default env, with `num_iterations=3` so that the profiled step is a learning one.
"""
from __future__ import annotations

import argparse
import collections
import json
import re
import time

import jax

import _common
from jaxmbrl.algorithms import dreamer, dyna, mbpo, pets

PHASES = ("env", "act", "plan", "model_fit", "model_rollout", "policy_update", "eval")

CONFIGS = {
    "pets": lambda sets: pets.Config(**{"num_iterations": 3, **sets}),
    "mbpo": lambda sets: mbpo.Config(**{"num_iterations": 3, "warmup_iterations": 1, **sets}),
    "dyna": lambda sets: dyna.Config(**{"mode": "deep", "env_id": "CartPole-v1", **sets}),
    "dreamer": lambda sets: dreamer.Config(**{"num_iterations": 3, **sets}),
}
MODULES = {"pets": pets, "mbpo": mbpo, "dyna": dyna, "dreamer": dreamer}


def phase_of(op_name: str) -> str:
    for part in op_name.split("/"):
        if part in PHASES:
            return part
    return "other"


def profile(name: str, sets: dict) -> dict:
    config = CONFIGS[name](sets)
    train = MODULES[name].make_train(config)
    state = jax.block_until_ready(jax.jit(train.init)(jax.random.PRNGKey(0), config.hparams()))
    t = time.perf_counter()
    step = jax.jit(train.step).lower(state).compile()
    compile_s = time.perf_counter() - t
    state, _ = jax.block_until_ready(step(state))  # warm-up; also the first learning iteration
    env_steps_before = int(state.env_steps)
    op_names = dict(re.findall(r"%([\w.\-]+) = .*?op_name=\"([^\"]*)\"", step.as_text()))
    (state, _), wall, op_seconds = _common.profiled_op_seconds(step, state, ops=op_names)
    seconds = collections.Counter()
    for op, s in op_seconds.items():
        seconds[phase_of(op_names[op])] += s
    total = sum(seconds.values())
    env_steps = int(state.env_steps) - env_steps_before
    return {
        "algorithm": name, "env_id": config.env_id, "compile_s": round(compile_s, 1),
        "iteration_s": round(wall, 3), "env_steps": env_steps, "env_steps_per_s": round(env_steps / wall, 1),
        # Shares of the operations' summed time (the profiler itself adds to the wall time).
        "phases": {p: {"s": round(s, 3), "share": round(s / total, 3)}
                   for p, s in sorted(seconds.items(), key=lambda kv: -kv[1])},
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("algorithms", nargs="+", choices=sorted(CONFIGS))
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="config overrides for every algorithm named")
    args = parser.parse_args()
    sets = _common.parse_sets(args.set)
    out = {"machine": _common.machine(), "results": [profile(name, sets) for name in args.algorithms]}
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
