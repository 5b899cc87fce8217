"""Turning a fitted ensemble into a planner's `model_fn` (PETS propagation modes).

Modes (Chua et al. 2018, section 5):
  "ts1": every particle is re-assigned to a random elite at every step;
  "tsinf": every particle keeps one elite for the whole trajectory;
  "expectation": the elites' mean prediction, no sampling (deterministic).

The single-particle call `model_fn(key, params, obs, action)` has no memory of which
member it used before, so it samples an elite per call (TS1 semantics). Planners use
`model_fn.over_particles(key, params, obs [P, ...], action)` where it exists: it groups
the P particles by elite so that each elite runs one dense matrix product over its
group instead of one matrix-vector product per particle; particle p keeps elite
`p * num_elites // P` under TSinf and gets a fresh random grouping every step under TS1.
"""
from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp

from jaxmbrl.models._ensemble import Ensemble, ModelState, _to_env_units, model_inputs
from jaxmbrl.models._normaliser import normalise
from jaxmbrl.types import Array, PRNGKey, RewardFn, TerminationFn

PROPAGATIONS = ("ts1", "tsinf", "expectation")


class EnsembleModelFn:
    """A `ModelFn` over a `ModelState`, with a grouped `over_particles` fast path."""

    def __init__(
        self,
        ens: Ensemble,
        propagation: str = "ts1",
        reward_fn: Optional[RewardFn] = None,
        termination_fn: Optional[TerminationFn] = None,
        sample: bool = True,
    ):
        cfg = ens.config
        if propagation not in PROPAGATIONS:
            raise ValueError(f"Unknown propagation {propagation!r}; choose one of {PROPAGATIONS}.")
        if reward_fn is None and not cfg.learn_reward:
            raise ValueError(
                "The ensemble does not learn the reward: pass reward_fn=jaxmbrl.envs.reward_fn(env_id)"
                " or build it with make_ensemble(..., learn_reward=True)."
            )
        self.ens = ens
        self.propagation = propagation
        self.reward_fn = reward_fn
        self.termination_fn = termination_fn
        self.sample = sample and cfg.probabilistic and propagation != "expectation"

    # -- shared pieces -------------------------------------------------------------
    def _finish(self, key, obs, action, pred):
        """Samples next obs/reward from a `Prediction` and applies known functions."""
        cfg = self.ens.config
        mean, logvar = pred.next_obs_mean, pred.next_obs_logvar
        r_mean, r_logvar = pred.reward_mean, pred.reward_logvar
        if self.sample:
            k_obs, k_rew = jax.random.split(key)
            mean = mean + jnp.exp(0.5 * logvar) * jax.random.normal(k_obs, mean.shape, mean.dtype)
            r_mean = r_mean + jnp.exp(0.5 * r_logvar) * jax.random.normal(k_rew, r_mean.shape, r_mean.dtype)
        next_obs = mean.reshape(obs.shape)
        if self.reward_fn is not None:
            reward = self.reward_fn(obs, action, next_obs)
        else:
            reward = r_mean
        if self.termination_fn is not None:
            terminated = self.termination_fn(obs, action, next_obs)
        elif cfg.learn_termination:
            terminated = pred.termination_prob > 0.5
        else:
            terminated = jnp.zeros((), jnp.bool_)
        return next_obs, jnp.asarray(reward, jnp.float32).reshape(()), jnp.asarray(terminated).reshape(())

    def _elite_params(self, mstate: ModelState):
        return jax.tree.map(lambda p: p[mstate.elites], mstate.params)

    # -- single particle -------------------------------------------------------------
    def __call__(self, key: PRNGKey, mstate: ModelState, obs: Array, action: Array):
        """One particle, one step: `(next_obs [*obs_shape], reward [], terminated [])`."""
        cfg = self.ens.config
        x = normalise(mstate.input_norm, model_inputs(cfg, obs, action))
        k_member, k_noise = jax.random.split(key)
        elite_params = self._elite_params(mstate)
        xs = jnp.broadcast_to(x, (cfg.num_elites,) + x.shape)
        mean, logvar, term_logit = _apply_elites(self.ens, elite_params, xs)
        if self.propagation == "expectation":
            mean, logvar, term_logit = mean.mean(0), logvar.mean(0), term_logit.mean(0)
        else:
            member = jax.random.randint(k_member, (), 0, cfg.num_elites)
            mean, logvar, term_logit = mean[member], logvar[member], term_logit[member]
        pred = _to_env_units(cfg, mstate, obs, mean, logvar, term_logit)
        return self._finish(k_noise, obs, action, pred)

    # -- all particles of one candidate ------------------------------------------------
    def over_particles(self, key: PRNGKey, mstate: ModelState, obs: Array, action: Array):
        """P particles of one candidate, one step.

        Args:
          obs: [P, *obs_shape]; action: one raw action shared by the particles.
        Returns:
          `(next_obs [P, *obs_shape], reward [P], terminated [P])`.
        """
        if self.propagation == "expectation":
            keys = jax.random.split(key, obs.shape[0])
            return jax.vmap(self, in_axes=(0, None, 0, None))(keys, mstate, obs, action)
        cfg = self.ens.config
        num_particles = obs.shape[0]
        elites = cfg.num_elites
        group = -(-num_particles // elites)
        padded = group * elites
        k_perm, k_noise = jax.random.split(key)
        obs_pad = jnp.concatenate([obs, jnp.repeat(obs[:1], padded - num_particles, 0)], 0)
        if self.propagation == "ts1":
            order = jax.random.permutation(k_perm, padded)
        else:
            order = jnp.arange(padded)
        grouped = obs_pad[order].reshape((elites, group) + obs.shape[1:])
        x = normalise(mstate.input_norm, model_inputs(cfg, grouped, jnp.broadcast_to(action, (elites, group) + jnp.shape(action))))
        mean, logvar, term_logit = _apply_elites(self.ens, self._elite_params(mstate), x)
        pred = _to_env_units(cfg, mstate, grouped, mean, logvar, term_logit)
        flat = jax.tree.map(lambda a: a.reshape((padded,) + a.shape[2:]), pred)
        # Undo the grouping so that output p belongs to input particle p.
        inverse = jnp.argsort(order)
        flat = jax.tree.map(lambda a: a[inverse][:num_particles], flat)
        keys = jax.random.split(k_noise, num_particles)
        finish = lambda k, o, p: self._finish(k, o, action, p)
        return jax.vmap(finish)(keys, obs, flat)


def _apply_elites(ens: Ensemble, elite_params, x):
    """`ens.apply` over only the elites' stacked parameters: x [K, ..., In]."""
    return ens.apply(elite_params, x)


def as_model_fn(
    ens: Ensemble,
    propagation: str = "ts1",
    reward_fn: Optional[RewardFn] = None,
    termination_fn: Optional[TerminationFn] = None,
    sample: bool = True,
) -> EnsembleModelFn:
    """A planner `model_fn(key, model_state, obs, action) -> (next_obs, reward, terminated)`.

    Args:
      propagation: "ts1", "tsinf" or "expectation".
      reward_fn: known reward `(obs, action, next_obs) -> r`; None uses the learned head.
      termination_fn: known termination; None uses the learned head if there is one,
        else never terminates.
      sample: draw from each member's Gaussian (False: use its mean).
    """
    return EnsembleModelFn(ens, propagation, reward_fn, termination_fn, sample)
