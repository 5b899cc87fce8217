"""jaxmbrl beside mbrl-lib 0.2.0 (PyTorch), measured back to back in one quiet period.

Runs the peer's two measurement scripts (`../shared/peers/`, built by its `setup.sh`
into `.peer/`) and the same measurements of jaxmbrl, one after the other (never at the
same time), and prints each pair with its ratio. For each it also prints the ceiling:
the ratio jaxmbrl would reach if its matrix products ran at the machine's measured
float32 peak, which no change to jaxmbrl's float32 code can pass.

  1. CEM planning, ensemble 5 x 4 x 200, TSinf, 5 iterations, at 500/30/20 and 200/15/10
     (population/horizon/particles): seconds per action. mbrl-lib's GaussianMLP uses
     ReLU; jaxmbrl is measured with ReLU (the same model), with SiLU (PETS' and jaxmbrl's
     default) and with ReLU in bfloat16 products.
  2. Ensemble training at batch 32: the peer's own shape (200 random transitions, 5%
     held out and evaluated each epoch, 25 epochs), and 10,000 transitions for one epoch;
     batch 256 as a fraction of the matmul peak. ReLU, SiLU and ReLU with bfloat16
     products; and ReLU with the members spread over one host device per core
     (`bench_model.py --member-devices N`, its own process).
  3. MBPO whole loop at the reference settings (400 rollouts and 20 SAC updates of batch
     256 per env step, model refit every 250 steps, one evaluation episode per 1,000
     steps): env steps/s over 1,000 learning steps after 1,000 random ones; float32,
     then SAC and the model in bfloat16 products.
  4. PETS on Pendulum-v1 at 200/15/10 with the 5 x 4 x 200 ReLU ensemble: one random
     and two MPC episodes; the peer's wall time for one seed (its whole process) against
     jaxmbrl's for 5 seeds vmapped, compile included.

    ../shared/peers/setup.sh   # once: builds .peer/
    python scripts/bench_vs_peer.py [--only cem,train,mbpo,pets] [--out bench_vs_peer.json]
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import jax
import jax.numpy as jnp

import _common
import bench_model
import bench_planner
from bench_mbpo import sac_update_flops
from jaxmbrl import envs
from jaxmbrl.algorithms import mbpo, pets

PARTS = ("cem", "train", "mbpo", "pets")


def run_peer(args, script: str, *flags: str) -> tuple:
    """`(last JSON line, wall seconds)` of one peer script run in its own process."""
    cmd = [args.peer_python, os.path.join(args.peer_dir, script), *flags]
    start = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    wall = time.perf_counter() - start
    return json.loads(out.strip().splitlines()[-1]), wall


def ratio(peer_s: float, ours_s: float) -> float:
    return round(peer_s / ours_s, 2)


def cem_part(args, peak: float, bf16_peak: float) -> list:
    _, _, spec = envs.make("Pendulum-v1")
    flops_per_eval = bench_planner.flops_per_model_eval(spec)
    rows = []
    for setting in bench_planner.SETTINGS:
        n, h, p = setting["num_samples"], setting["horizon"], setting["num_particles"]
        peer, _ = run_peer(args, "mbrl_lib_pets.py", "--episodes", "0", "--actions", "3", "--pop", str(n),
                           "--horizon", str(h), "--particles", str(p))
        peer_s = peer["plan_s_per_action_median"]
        gflop = bench_planner.model_evals(n, h, p, 5) * flops_per_eval / 1e9
        for activation, dtype in (("relu", "float32"), ("silu", "float32"), ("relu", "bfloat16")):
            ours = bench_planner.measure_cem(n, h, p, activation=activation, compute_dtype=dtype)
            row_peak = bf16_peak if dtype == "bfloat16" else peak
            rows.append(dict(
                setting=f"{n}/{h}/{p}", activation=activation, compute_dtype=dtype,
                peer_s_per_action=round(peer_s, 3), s_per_action=ours["s_per_action"],
                speedup=ratio(peer_s, ours["s_per_action"]), compile_s=ours["compile_plus_first_call_s"],
                fraction_of_float32_peak=round(ours["gflops_per_s"] / peak, 3),
                fraction_of_own_dtype_peak=round(ours["gflops_per_s"] / row_peak, 3),
                ceiling_speedup=round(peer_s / (gflop / row_peak), 2),
            ))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def fit_on_host_devices(devices: int, *, transitions: int, epochs: int, batch_size: int,
                        holdout_ratio: float = 0.0) -> dict:
    """`bench_model.py --member-devices N` in its own process (host devices must exist before
    JAX starts): the members spread over N host devices, ReLU, float32."""
    cmd = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)), "bench_model.py"),
           "--member-devices", str(devices), "--activation", "relu", "--transitions", str(transitions),
           "--epochs", str(epochs), "--batch-size", str(batch_size), "--holdout-ratio", str(holdout_ratio)]
    return json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)


def train_part(args, peak: float, bf16_peak: float) -> list:
    peer, _ = run_peer(args, "mbrl_lib_pets.py", "--episodes", "0", "--actions", "1", "--pop", "50",
                       "--horizon", "5", "--particles", "2")
    peer_rate = peer["model_train_transitions_per_s"]
    rows = []
    for shape in (dict(transitions=200, epochs=25, holdout_ratio=0.05), dict(transitions=10_000, epochs=1)):
        for activation, dtype in (("relu", "float32"), ("silu", "float32"), ("relu", "bfloat16")):
            ours = bench_model.measure_fit(batch_size=32, activation=activation, compute_dtype=dtype, **shape)
            # Ceiling: the peer's seconds for these transitions against the products'
            # FLOPs at the float32 peak.
            ideal_rate = ours["transitions_per_s"] * peak / ours["gflops_per_s"]
            rows.append(dict(
                shape=f"{shape['transitions']} transitions x {shape['epochs']} epochs", batch_size=32,
                activation=activation, compute_dtype=dtype, peer_transitions_per_s=round(peer_rate),
                transitions_per_s=ours["transitions_per_s"], speedup=round(ours["transitions_per_s"] / peer_rate, 2),
                compile_s=ours["compile_s_estimate"], fraction_of_float32_peak=round(ours["gflops_per_s"] / peak, 3),
                fraction_of_own_dtype_peak=round(ours["gflops_per_s"] / (bf16_peak if dtype == "bfloat16" else peak), 3),
                ceiling_speedup=round(ideal_rate / peer_rate, 2),
            ))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        devices = os.cpu_count() or 1
        if devices > 1:
            ours = fit_on_host_devices(devices, batch_size=32, **shape)
            rows.append(dict(
                shape=f"{shape['transitions']} transitions x {shape['epochs']} epochs", batch_size=32,
                activation="relu", compute_dtype="float32", member_devices=devices,
                peer_transitions_per_s=round(peer_rate), transitions_per_s=ours["transitions_per_s"],
                speedup=round(ours["transitions_per_s"] / peer_rate, 2), compile_s=ours["compile_s_estimate"],
                fraction_of_float32_peak=round(ours["gflops_per_s"] / peak, 3)))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    for activation, dtype in (("relu", "float32"), ("silu", "float32"), ("relu", "bfloat16")):
        ours = bench_model.measure_fit(transitions=10_000, epochs=5, batch_size=256, activation=activation,
                                       compute_dtype=dtype)
        rows.append(dict(shape="10000 transitions x 5 epochs", batch_size=256, activation=activation,
                         compute_dtype=dtype,
                         transitions_per_s=ours["transitions_per_s"], compile_s=ours["compile_s_estimate"],
                         fraction_of_float32_peak=round(ours["gflops_per_s"] / peak, 3),
                         fraction_with_evaluation=round(ours["gflops_per_s_with_evaluation"] / peak, 3)))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def mbpo_part(args, peak: float) -> dict:
    peer, peer_wall = run_peer(args, "mbrl_lib_mbpo.py", "--num-steps", "1000")
    # The peer's wall includes its 1,000 random steps and first model fit: its rate is
    # its 1,000 learning steps over that whole wall (a slight advantage to jaxmbrl).
    peer_rate = peer["train_env_steps_per_s"]
    _, _, spec = envs.make("Pendulum-v1")
    sac_gflop_per_step = mbpo.Config().policy_updates_per_step * sac_update_flops(spec.obs_dim, spec.action_dim) / 1e9

    def measure(dtype: str) -> dict:
        config = mbpo.Config(num_iterations=2, warmup_iterations=1, steps_per_iteration=1000, model_train_every=250,
                             num_eval_episodes=1, policy_compute_dtype=dtype, model_compute_dtype=dtype)
        train = mbpo.make_train(config)
        state = jax.block_until_ready(jax.jit(train.init)(jax.random.PRNGKey(0), config.hparams()))
        start = time.perf_counter()
        step = jax.jit(train.step).lower(state).compile()
        compile_s = time.perf_counter() - start
        start = time.perf_counter()
        state, metrics = jax.block_until_ready(step(state))
        rate = config.steps_per_iteration / (time.perf_counter() - start)
        return dict(env_steps_per_s=round(rate, 2), speedup=ratio(1 / peer_rate, 1 / rate), compile_s=round(compile_s, 1),
                    eval_return=float(metrics.eval_return),
                    sac_fraction_of_float32_peak=round(sac_gflop_per_step * rate / peak, 3))

    out = dict(peer_env_steps_per_s=round(peer_rate, 2), peer_wall_s=round(peer_wall, 1),
               peer_eval_return=peer["eval_returns"], **measure("float32"),
               # Even with nothing but SAC's products at the peak.
               ceiling_speedup=round(peak / sac_gflop_per_step / peer_rate, 2))
    # SAC's and the model's products in bfloat16 (`policy_compute_dtype`, `model_compute_dtype`).
    out["bfloat16"] = measure("bfloat16")
    print(json.dumps(out), file=sys.stderr, flush=True)
    return out


def pets_part(args) -> list:
    peer, peer_wall = run_peer(args, "mbrl_lib_pets.py", "--episodes", "2", "--actions", "1", "--pop", "200",
                               "--horizon", "15", "--particles", "10")
    rows = []
    for dtype in ("float32", "bfloat16"):
        start = time.perf_counter()
        config = pets.Config(num_iterations=3, warmup_iterations=1, planner_samples=200, planner_horizon=15,
                             planner_particles=10, planner_elites=20, planner_iterations=5,
                             model_hidden_sizes=(200, 200, 200, 200), num_members=5, num_model_elites=5,
                             model_epochs=25, model_batch_size=32, model_patience=0, model_activation="relu",
                             model_compute_dtype=dtype)
        train = pets.make_train(config)
        hp = jax.tree.map(lambda h: jnp.full((5,), h, jnp.float32), config.hparams()._replace(holdout_ratio=0.05))
        keys = jax.random.split(jax.random.PRNGKey(0), 5)
        _, metrics = jax.block_until_ready(jax.jit(jax.vmap(train.run))(keys, hp))
        wall = time.perf_counter() - start
        rows.append(dict(compute_dtype=dtype, peer_one_seed_wall_s=round(peer_wall, 1),
                         peer_returns=[round(r, 1) for r in peer["returns"]], five_seeds_wall_s=round(wall, 1),
                         fraction_of_peer_wall=round(wall / peer_wall, 3),
                         returns=jnp.round(metrics.episode_return, 1).tolist()))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated parts of {PARTS}")
    parser.add_argument("--peer-python", default=".peer/bin/python")
    parser.add_argument("--peer-dir", default="../shared/peers")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    args = parser.parse_args()
    parts = [p for p in args.only.split(",") if p]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {PARTS}")
    if not os.path.exists(args.peer_python):
        parser.error(f"{args.peer_python} not found: build the peer with ../shared/peers/setup.sh first")
    peak = _common.matmul_peak_gflops()
    bf16_peak = _common.bf16_matmul_peak_gflops()
    result = {"machine": _common.machine(), "matmul_peak_gflops_per_s": round(peak, 1),
              "bf16_matmul_peak_gflops_per_s": round(bf16_peak, 1)}
    if "cem" in parts:
        result["cem"] = cem_part(args, peak, bf16_peak)
    if "train" in parts:
        result["train"] = train_part(args, peak, bf16_peak)
    if "mbpo" in parts:
        result["mbpo"] = mbpo_part(args, peak)
    if "pets" in parts:
        result["pets"] = pets_part(args)
    result["matmul_peak_gflops_per_s_after"] = round(_common.matmul_peak_gflops(), 1)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
