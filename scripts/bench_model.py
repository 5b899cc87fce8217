"""Model-training throughput of the PETS ensemble at mbrl-lib's reference configuration.

Ensemble of 5 members x 4 hidden layers x 200 units, Gaussian outputs with learned
reward, batch 32 per member (bootstrap), one epoch over 10,000 Pendulum-v1
transitions, no holdout. `scripts/bench_vs_peer.py` also runs it at the peer's own shape
(200 transitions, 25 epochs, 5% held out and evaluated every epoch) beside mbrl-lib.

    python scripts/bench_model.py [--transitions 10000] [--epochs 1] [--batch-size 32]
        [--member-devices 2]

`--member-devices N` starts JAX with N host devices and spreads the members over them
(`models.fit(..., member_sharding=models.member_sharding())`).
"""
from __future__ import annotations

import argparse
import json
import os
import sys


def _member_devices(argv) -> int:
    """`--member-devices` read before argparse (which reports a bad value itself)."""
    for i, arg in enumerate(argv):
        value = argv[i + 1] if arg == "--member-devices" and i + 1 < len(argv) else (
            arg.split("=", 1)[1] if arg.startswith("--member-devices=") else None)
        if value is not None:
            return int(value) if value.isdigit() else 1
    return 1


# Host devices exist only if asked for before JAX starts its backend.
if _member_devices(sys.argv[1:]) > 1:
    os.environ["XLA_FLAGS"] = (f"{os.environ.get('XLA_FLAGS', '')} "
                               f"--xla_force_host_platform_device_count={_member_devices(sys.argv[1:])}").strip()

import jax  # noqa: E402

import _common  # noqa: E402
from jaxmbrl import buffers, envs, models  # noqa: E402

HIDDEN = (200, 200, 200, 200)


def measure_fit(transitions: int = 10_000, epochs: int = 1, batch_size: int = 32, members: int = 5, *,
                holdout_ratio: float = 0.0, activation: str = "silu", compute_dtype: str = "float32",
                repeats: int = 5, member_devices: int = 1) -> dict:
    """Transitions per second through `models.fit` (best of `repeats`), and its compile."""
    if jax.device_count() < member_devices:
        raise SystemExit(f"--member-devices {member_devices}: JAX has {jax.device_count()} device(s); "
                         "set it on the command line so that the devices exist before JAX starts.")
    sharding = models.member_sharding(jax.devices()[:member_devices]) if member_devices > 1 else None
    env, env_params, spec = envs.make("Pendulum-v1")
    num_envs = 10 if transitions % 10 == 0 else 1
    data = jax.jit(
        lambda k: envs.random_rollout(env, env_params, spec, k, transitions // num_envs, num_envs)
    )(jax.random.PRNGKey(0))
    data = jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), data)
    example = jax.tree.map(lambda a: a[0], data)
    buf = buffers.add(buffers.init(transitions, example), data)
    ens = models.make_ensemble(spec.obs_dim, spec.action_dim, members, members, HIDDEN, learn_reward=True,
                               activation=activation, compute_dtype=compute_dtype)
    mstate = models.init_model(ens, jax.random.PRNGKey(1), example)
    # patience=0: every epoch runs (mbrl-lib's benchmark sets patience = epochs).
    fit = jax.jit(lambda m, k, b: models.fit(ens, m, k, b, epochs=epochs, batch_size=batch_size,
                                             holdout_ratio=holdout_ratio, patience=0,
                                             member_sharding=sharding))
    first, best, (_, info) = _common.timed(fit, mstate, jax.random.PRNGKey(2), buf, repeats=repeats)
    num_train, num_hold = int(info.num_train), int(info.num_holdout)
    steps = -(-num_train // batch_size) * epochs
    sizes = (spec.obs_dim + spec.action_dim,) + HIDDEN + (2 * (spec.obs_dim + 1),)
    flops = _common.mlp_flops(sizes, batch_size * members, backward=True) * steps
    # `fit` also evaluates every member before the first and after every epoch, on the
    # held-out rows (or up to `max_holdout` training rows when none are held out).
    eval_rows = num_hold if num_hold else min(num_train, 5000)
    eval_flops = _common.mlp_flops(sizes, eval_rows * members, backward=False) * (epochs + 1)
    return dict(transitions=transitions, epochs=epochs, batch_size=batch_size, members=members,
                member_devices=member_devices,
                holdout_ratio=holdout_ratio, activation=activation, compute_dtype=compute_dtype,
                compile_s_estimate=round(first - best, 2), steady_s=round(best, 4),
                ms_per_step=round(1e3 * best / steps, 3),
                # Counted as mbrl-lib counts: every stored transition, each epoch.
                transitions_per_s=round(transitions * epochs / best),
                gflops_per_s=round(flops / best / 1e9, 1),
                gflops_per_s_with_evaluation=round((flops + eval_flops) / best / 1e9, 1),
                final_train_loss=float(info.train_loss[-1]))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--transitions", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--members", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--member-devices", type=int, default=1,
                        help="host devices to spread the members over (sets XLA_FLAGS before JAX starts)")
    parser.add_argument("--holdout-ratio", type=float, default=0.0)
    parser.add_argument("--activation", default="silu", choices=sorted(models.ACTIVATIONS))
    parser.add_argument("--compute-dtype", default="float32", choices=sorted(models.COMPUTE_DTYPES))
    args = parser.parse_args()
    if args.member_devices < 1:
        parser.error(f"--member-devices must be at least 1, got {args.member_devices}.")
    result = measure_fit(args.transitions, args.epochs, args.batch_size, args.members,
                         holdout_ratio=args.holdout_ratio, activation=args.activation,
                         compute_dtype=args.compute_dtype, repeats=args.repeats,
                         member_devices=args.member_devices)
    peak = _common.matmul_peak_gflops()
    result.update(machine=_common.machine(), matmul_peak_gflops_per_s=round(peak, 1),
                  fraction_of_float32_matmul_peak=round(result["gflops_per_s"] / peak, 3),
                  fraction_with_evaluation=round(result["gflops_per_s_with_evaluation"] / peak, 3))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
