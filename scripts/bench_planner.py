"""CEM planning latency per action with a PETS ensemble (mbrl-lib's reference settings).

Ensemble 5 members x 4 hidden layers x 200 (Pendulum-v1 sizes), TSinf propagation,
CEM with 5 iterations. Two settings, as measured for mbrl-lib 0.2.0 on this machine
class (PyTorch, 2 threads):
  population 500, horizon 30, 20 particles: 6.7 s per action;
  population 200, horizon 15, 10 particles: 0.57 s per action.

The planner is built by name with shapes only and its floats (`CEMHParams`) are passed
to the jitted `plan` at each call, as the algorithms do.

    python scripts/bench_planner.py [--repeats 3]
"""
from __future__ import annotations

import argparse
import json

import jax

import _common
from jaxmbrl import envs, models, planning

SETTINGS = (
    dict(num_samples=500, horizon=30, num_particles=20, mbrl_lib_s=6.7),
    dict(num_samples=200, horizon=15, num_particles=10, mbrl_lib_s=0.57),
)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()

    _, _, spec = envs.make("Pendulum-v1")
    hidden = (200, 200, 200, 200)
    ens = models.make_ensemble(spec.obs_dim, spec.action_dim, 5, 5, hidden)
    mstate = models.init_model(ens, jax.random.PRNGKey(0))
    model_fn = models.as_model_fn(ens, "tsinf", reward_fn=envs.reward_fn("Pendulum-v1"))
    obs = jax.numpy.array([1.0, 0.0, 0.0])
    peak = _common.matmul_peak_gflops()
    # Forward FLOPs of one member on one (obs, action): 4 -> 200 x4 -> 2 x 3 outputs.
    sizes = (spec.obs_dim + spec.action_dim,) + hidden + (2 * spec.obs_dim,)
    flops_per_eval = _common.mlp_flops(sizes, 1, backward=False)
    rows = []
    for setting in SETTINGS:
        planner = planning.make_planner(
            "cem", model_fn, spec, horizon=setting["horizon"], num_samples=setting["num_samples"],
            num_elites=setting["num_samples"] // 10, num_iters=args.iters, num_particles=setting["num_particles"])
        plan = jax.jit(planner.plan)
        first, best, _ = _common.timed(plan, jax.random.PRNGKey(1), planner.init(), mstate, obs, planner.hparams,
                                       repeats=args.repeats)
        evals = setting["num_samples"] * setting["horizon"] * setting["num_particles"] * args.iters
        rows.append(dict(
            population=setting["num_samples"], horizon=setting["horizon"], particles=setting["num_particles"],
            iterations=args.iters, compile_plus_first_call_s=round(first, 2), s_per_action=round(best, 3),
            mbrl_lib_s_per_action=setting["mbrl_lib_s"], speedup_vs_mbrl_lib=round(setting["mbrl_lib_s"] / best, 2),
            model_evals_per_s=round(evals / best), gflops_per_s=round(evals * flops_per_eval / best / 1e9, 1),
            fraction_of_matmul_peak=round(evals * flops_per_eval / best / 1e9 / peak, 3),
        ))
    print(json.dumps({"machine": _common.machine(), "matmul_peak_gflops_per_s": round(peak, 1), "results": rows}, indent=2))


if __name__ == "__main__":
    main()
