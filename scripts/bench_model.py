"""Model-training throughput at mbrl-lib's reference configuration.

Ensemble of 5 members x 4 hidden layers x 200 units, Gaussian outputs with learned
reward, batch 32 per member (bootstrap), one epoch over 10,000 Pendulum-v1
transitions. mbrl-lib 0.2.0 (PyTorch, 2 threads) reaches 4.5k transitions/s on the
same machine class.

    python scripts/bench_model.py [--transitions 10000] [--epochs 1]
"""
from __future__ import annotations

import argparse
import json

import jax
import jax.numpy as jnp

import _common
from jaxmbrl import buffers, envs, models

MBRL_LIB_TRANSITIONS_PER_S = 4500.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transitions", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    env, env_params, spec = envs.make("Pendulum-v1")
    num_envs = 10
    data = jax.jit(
        lambda k: envs.random_rollout(env, env_params, spec, k, args.transitions // num_envs, num_envs)
    )(jax.random.PRNGKey(0))
    data = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), data)
    example = jax.tree.map(lambda a: a[0], data)
    buf = buffers.add(buffers.init(args.transitions, example), data)

    hidden = (200, 200, 200, 200)
    ens = models.make_ensemble(spec.obs_dim, spec.action_dim, args.members, args.members, hidden, learn_reward=True)
    mstate = models.init_model(ens, jax.random.PRNGKey(1), example)
    # holdout_ratio=0: the epoch runs over all transitions, as in the reference.
    fit = jax.jit(
        lambda m, k, b: models.fit(ens, m, k, b, epochs=args.epochs, batch_size=args.batch_size,
                                holdout_ratio=0.0, patience=0)
    )
    first, best, (_, info) = _common.timed(fit, mstate, jax.random.PRNGKey(2), buf, repeats=args.repeats)
    steps = -(-args.transitions // args.batch_size) * args.epochs
    rate = args.transitions * args.epochs / best
    sizes = (spec.obs_dim + spec.action_dim,) + hidden + (2 * (spec.obs_dim + 1),)
    flops = _common.mlp_flops(sizes, args.batch_size * args.members, backward=True) * steps
    peak = _common.matmul_peak_gflops()
    result = {
        "machine": _common.machine(),
        "transitions": args.transitions,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "members": args.members,
        "compile_plus_first_call_s": round(first, 2),
        "compile_s_estimate": round(first - best, 2),
        "steady_s": round(best, 4),
        "ms_per_step": round(1e3 * best / steps, 3),
        "transitions_per_s": round(rate),
        "ratio_vs_mbrl_lib": round(rate / MBRL_LIB_TRANSITIONS_PER_S, 2),
        "gflops_per_s": round(flops / best / 1e9, 1),
        "matmul_peak_gflops_per_s": round(peak, 1),
        "final_train_loss": float(info.train_loss[-1]),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
