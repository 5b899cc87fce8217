"""TD-MPC2's speed on this machine: the latency of one planning call per action, and the
whole loop's env steps per second (planning, one update per step, the env, and the
iteration's evaluation), at the paper's planner settings and at a reduced one, with the
compile time of each.

    python scripts/bench_tdmpc2.py [--env Pendulum-v1] [--steps 100]
"""
from __future__ import annotations

import argparse
import json
import time

import jax

import _common
from jaxmbrl import run
from jaxmbrl.algorithms import tdmpc2

SETTINGS = {
    "paper (6 iterations, 512 samples, 64 elites, 24 policy trajectories, horizon 3)": {},
    "reduced (4 iterations, 256 samples, 32 elites, 12 policy trajectories, horizon 3)": dict(
        planner_samples=256, planner_elites=32, planner_iterations=4, planner_proposals=12),
}


def measure(env_id, fields, steps):
    _, cfg, hp = run.resolve("tdmpc2", overrides={"env_id": env_id, "steps_per_iteration": steps,
                                                  "num_iterations": 3, "num_eval_episodes": 1, **fields})
    train = tdmpc2.make_train(cfg)
    state = jax.block_until_ready(jax.jit(train.init)(jax.random.PRNGKey(0), hp))
    step = jax.jit(train.step)
    compile_start = time.perf_counter()
    compiled = step.lower(state).compile()
    compile_s = time.perf_counter() - compile_start
    state, _ = jax.block_until_ready(compiled(state))  # the first learning iteration
    start = time.perf_counter()
    state, _ = jax.block_until_ready(compiled(state))
    loop_s = time.perf_counter() - start
    # One planning call (encode + mppi_elites) with the model as it is after two iterations.
    pstate = jax.tree.map(lambda x: x[:1], state.planner)
    plan = jax.jit(lambda key, params, obs, pstate: train.act(key, params, obs, pstate, hp, False))
    first, best, _ = _common.timed(plan, jax.random.PRNGKey(1), state.learner.params, state.obs[:1], pstate,
                                   repeats=10)
    # An iteration also runs one evaluation episode of `max_steps` planning calls.
    return {"loop_env_steps_per_s_with_eval": round(steps / loop_s, 2), "iteration_s": round(loop_s, 2),
            "plan_ms_per_action": round(1e3 * best, 2), "compile_step_s": round(compile_s, 1),
            "compile_plan_s": round(first - best, 1), "steps_per_iteration": steps,
            "eval_episode_steps": train.spec.max_steps}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--steps", type=int, default=100, help="env steps per measured iteration")
    args = parser.parse_args()
    out = {"machine": _common.machine(), "env": args.env}
    for name, fields in SETTINGS.items():
        out[name] = measure(args.env, fields, args.steps)
        print(name, json.dumps(out[name]), flush=True)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
