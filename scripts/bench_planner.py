"""CEM planning latency per action with a PETS ensemble (mbrl-lib's reference settings).

Ensemble 5 members x 4 hidden layers x 200 (Pendulum-v1 sizes), TSinf propagation,
CEM with 5 iterations and 10% elites, at two settings: population 500, horizon 30, 20
particles; and population 200, horizon 15, 10 particles. The planner is built by name
with shapes only and its floats (`CEMHParams`) are passed to the jitted `plan` at each
call, as the algorithms do. `scripts/bench_vs_peer.py` runs the same measurement beside
mbrl-lib's.

    python scripts/bench_planner.py [--repeats 3] [--activation relu] [--compute-dtype bfloat16]
"""
from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp

import _common
from jaxmbrl import envs, models, planning

SETTINGS = (
    dict(num_samples=500, horizon=30, num_particles=20),
    dict(num_samples=200, horizon=15, num_particles=10),
)
HIDDEN = (200, 200, 200, 200)


def model_evals(num_samples: int, horizon: int, num_particles: int, iters: int) -> int:
    return num_samples * horizon * num_particles * iters


def flops_per_model_eval(spec) -> float:
    """Forward FLOPs of one member on one (obs, action): 4 -> 200 x4 -> 2 x 3 outputs."""
    sizes = (spec.obs_dim + spec.action_dim,) + HIDDEN + (2 * spec.obs_dim,)
    return _common.mlp_flops(sizes, 1, backward=False)


def measure_cem(num_samples: int, horizon: int, num_particles: int, iters: int = 5, *,
                activation: str = "silu", compute_dtype: str = "float32", repeats: int = 3) -> dict:
    """Seconds per `plan` call (best of `repeats`) and compile, at one setting."""
    _, _, spec = envs.make("Pendulum-v1")
    ens = models.make_ensemble(spec.obs_dim, spec.action_dim, 5, 5, HIDDEN, activation=activation,
                               compute_dtype=compute_dtype)
    mstate = models.init_model(ens, jax.random.PRNGKey(0))
    model_fn = models.as_model_fn(ens, "tsinf", reward_fn=envs.reward_fn("Pendulum-v1"))
    planner = planning.make_planner("cem", model_fn, spec, horizon=horizon, num_samples=num_samples,
                                    num_elites=num_samples // 10, num_iters=iters, num_particles=num_particles)
    plan = jax.jit(planner.plan)
    first, best, _ = _common.timed(plan, jax.random.PRNGKey(1), planner.init(), mstate,
                                   jnp.array([1.0, 0.0, 0.0]), planner.hparams, repeats=repeats)
    evals = model_evals(num_samples, horizon, num_particles, iters)
    return dict(population=num_samples, horizon=horizon, particles=num_particles, iterations=iters,
                activation=activation, compute_dtype=compute_dtype,
                compile_plus_first_call_s=round(first, 2), s_per_action=round(best, 3),
                model_evals_per_s=round(evals / best),
                gflops_per_s=round(evals * flops_per_model_eval(spec) / best / 1e9, 1))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--activation", default="silu", choices=sorted(models.ACTIVATIONS))
    parser.add_argument("--compute-dtype", default="float32", choices=sorted(models.COMPUTE_DTYPES))
    args = parser.parse_args()
    peak = _common.matmul_peak_gflops()
    rows = []
    for setting in SETTINGS:
        row = measure_cem(**setting, iters=args.iters, activation=args.activation,
                          compute_dtype=args.compute_dtype, repeats=args.repeats)
        row["fraction_of_float32_matmul_peak"] = round(row["gflops_per_s"] / peak, 3)
        rows.append(row)
    print(json.dumps({"machine": _common.machine(), "matmul_peak_gflops_per_s": round(peak, 1), "results": rows},
                     indent=2))


if __name__ == "__main__":
    main()
