"""Throughput of the whole MBPO loop at mbrl-lib's reference settings (Pendulum-v1).

Per env step: 400 one-step model rollouts and 20 SAC updates of batch 256 (256-unit
twin critics and actor); 7-member 4 x 200 ensemble refit every 200 steps; 5 greedy
evaluation episodes per 200-step iteration. Also times the 20 SAC updates alone and their
GFLOP/s. `scripts/bench_vs_peer.py` measures the loop beside mbrl-lib's at its settings.
`--env` and `--set` take another task and Config fields (e.g. brax/hopper, whose
episodes are 1,000 steps: fewer evaluation episodes keep the evaluation from dominating).

    python scripts/bench_mbpo.py [--seeds 1]
    python scripts/bench_mbpo.py --env brax/hopper --set num_eval_episodes=1
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np

import _common
from jaxmbrl import envs, run
from jaxmbrl.agents import sac
from jaxmbrl.algorithms import mbpo
from jaxmbrl.types import Transition


def sac_update_flops(obs_dim: int, action_dim: int, hidden=(256, 256), batch: int = 256) -> float:
    """Matmul FLOPs of one SAC update (approximate: dense layers only).

    Critic loss: actor forward on s', twin target critics forward, twin critics
    forward + backward. Actor loss: actor forward + backward, twin critics forward and
    their input gradients only (the actor's loss is differentiated in the actor's
    parameters alone, so autodiff computes no critic weight gradients there: counting
    them, as this did before 2026-12-04, overstated the FLOPs by ~12%). Alpha loss reuses
    the actor's log-probs.
    """
    critic = (obs_dim + action_dim,) + tuple(hidden) + (1,)
    actor = (obs_dim,) + tuple(hidden) + (2 * action_dim,)
    f = lambda sizes: _common.mlp_flops(sizes, batch, backward=False)
    fb = lambda sizes: _common.mlp_flops(sizes, batch, backward=True)
    return f(actor) + 2 * f(critic) + 2 * fb(critic) + fb(actor) + 2 * (2 * f(critic))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--env", default="Pendulum-v1")
    parser.add_argument("--backend", default="", help="Brax physics pipeline (brax/... only)")
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="mbpo.Config or mbpo.HParams overrides")
    args = parser.parse_args()
    fields = {"env_id": args.env, "num_iterations": 3, "warmup_iterations": 1,
              **({"env_kwargs": {"backend": args.backend}} if args.backend else {}),
              **run._config.parse_assignments(args.set)}
    _, cfg, hparams = run.resolve("mbpo", overrides=fields)
    train = mbpo.make_train(cfg)
    hp = jax.tree.map(lambda h: jnp.full((args.seeds,), h, jnp.float32), hparams)
    keys = jax.random.split(jax.random.PRNGKey(0), args.seeds)
    state = jax.block_until_ready(jax.jit(jax.vmap(train.init))(keys, hp))
    t = time.perf_counter()
    step = jax.jit(jax.vmap(train.step)).lower(state).compile()
    compile_s = time.perf_counter() - t
    times = []
    for _ in range(cfg.num_iterations - cfg.warmup_iterations):
        t = time.perf_counter()
        state, metrics = jax.block_until_ready(step(state))
        times.append(time.perf_counter() - t)
    per_iter = min(times)
    env_steps_per_s = cfg.steps_per_iteration * args.seeds / per_iter

    # The SAC updates alone: 20 updates of batch 256 in one scan, as in one env step.
    _, _, spec = envs.make(cfg.env_id, **cfg.env_kwargs)
    agent = sac.make_sac(spec.obs_shape, spec.action_dim, spec.low[0], spec.high[0], (256, 256))
    sstate = agent.init(jax.random.PRNGKey(1))
    k = jax.random.split(jax.random.PRNGKey(2), 3)
    n, b, o, a = 20, 256, spec.obs_dim, spec.action_dim
    batch = Transition(
        obs=jax.random.normal(k[0], (n, b, o)), action=jax.random.uniform(k[1], (n, b, a), minval=-1, maxval=1),
        reward=jax.random.normal(k[2], (n, b)), next_obs=jax.random.normal(k[0], (n, b, o)),
        terminated=jnp.zeros((n, b), bool), truncated=jnp.zeros((n, b), bool),
    )
    hp_sac = sac.SACHParams()
    updates = jax.jit(lambda s, b: jax.lax.scan(lambda s, x: agent.update(s, x, hp_sac), s, b)[0])
    first, best, _ = _common.timed(updates, sstate, batch, repeats=5)
    flops = 20 * sac_update_flops(spec.obs_dim, spec.action_dim)
    peak = _common.matmul_peak_gflops()
    print(json.dumps({
        "machine": _common.machine(),
        "env_id": cfg.env_id,
        "seeds": args.seeds,
        "mbpo_step_compile_s": round(compile_s, 1),
        "steps_per_iteration": cfg.steps_per_iteration,
        "num_eval_episodes": cfg.num_eval_episodes,
        "seconds_per_iteration": [round(x, 2) for x in times],
        "env_steps_per_s": round(env_steps_per_s, 2),
        "sac_20_updates_ms": round(1e3 * best, 2),
        "sac_updates_gflops_per_s": round(flops / best / 1e9, 1),
        "matmul_peak_gflops_per_s": round(peak, 1),
        "eval_return_last": float(np.asarray(metrics.eval_return).mean()),
    }, indent=2))


if __name__ == "__main__":
    main()
