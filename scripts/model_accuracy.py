"""Held-out accuracy of the Gaussian ensemble vs a deterministic MLP on Pendulum-v1.

Both are fitted on 10,000 random-action transitions (20% held out inside `fit` for early
stopping) and scored on 2,000 fresh transitions:
  - one-step MSE of the observation delta, standardised by the training targets'
    statistics (so 0.01 = 1% of the delta's variance);
  - Gaussian NLL per target dimension (standardised units). The deterministic MLP gets
    its best constant variance: the test residuals' own per-dimension variance.

    python scripts/model_accuracy.py [--members 7] [--elites 5] [--epochs 100]
"""
from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp

import _common
from jaxmbrl import buffers, envs, models


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--members", type=int, default=7)
    parser.add_argument("--elites", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    env, env_params, spec = envs.make("Pendulum-v1")
    collect = jax.jit(lambda k, t: envs.random_rollout(env, env_params, spec, k, t, 10), static_argnums=1)
    flat = lambda tr: jax.tree.map(lambda a: a.reshape((-1,) + a.shape[2:]), tr)
    key = jax.random.PRNGKey(args.seed)
    k_train, k_test, k_ens, k_det, k_fit = jax.random.split(key, 5)
    train, test = flat(collect(k_train, 1000)), flat(collect(k_test, 200))
    buf = buffers.add(buffers.init(10_000, jax.tree.map(lambda a: a[0], train)), train)

    hidden = (200, 200, 200, 200)
    ens = models.make_ensemble(spec.obs_dim, spec.action_dim, args.members, args.elites, hidden, learn_reward=True)
    det = models.make_ensemble(spec.obs_dim, spec.action_dim, 1, 1, hidden, learn_reward=True, probabilistic=False)
    results = {"machine": _common.machine()}
    states = {}
    for name, model, k in (("ensemble", ens, k_ens), ("deterministic", det, k_det)):
        fit = jax.jit(lambda m, kk, b, model=model: models.fit(model, m, kk, b, epochs=args.epochs, batch_size=32))
        start = time.perf_counter()
        mstate, info = jax.block_until_ready(fit(models.init_model(model, k), k_fit, buf))
        states[name] = mstate
        results[f"{name}_fit_s"] = round(time.perf_counter() - start, 1)
        results[f"{name}_epochs_trained"] = info.epochs_trained.tolist()

    norm = states["ensemble"].target_norm
    ens_metrics = models.evaluate(ens, states["ensemble"], test, target_norm=norm)
    pred = jax.vmap(lambda o, a: models.predict(det, states["deterministic"], o, a))(test.obs, test.action)
    resid = jnp.concatenate([pred.next_obs_mean[:, 0] - test.next_obs, (pred.reward_mean[:, 0] - test.reward)[:, None]], -1)
    det_metrics = models.evaluate(det, states["deterministic"], test, target_norm=norm,
                                  logvar_override=jnp.log((resid**2).mean(0)))
    elites = states["ensemble"].elites
    results.update(
        ensemble_obs_delta_mse_elites=[round(float(v), 6) for v in ens_metrics.obs_delta_mse[elites]],
        ensemble_nll_moment_matched=round(float(ens_metrics.mean_nll), 3),
        ensemble_nll_per_member=[round(float(v), 3) for v in ens_metrics.nll],
        deterministic_obs_delta_mse=round(float(det_metrics.obs_delta_mse[0]), 6),
        deterministic_nll_best_constant_variance=round(float(det_metrics.nll[0]), 3),
    )
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
