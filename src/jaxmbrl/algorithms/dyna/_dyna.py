"""`make_train` for both Dyna-Q modes: validation, then the tabular or the deep loop."""
from __future__ import annotations

from typing import Optional

from jaxmbrl import envs, models
from jaxmbrl.algorithms._contract import resolve_env
from jaxmbrl.algorithms.dyna._config import Config, Train
from jaxmbrl.algorithms.dyna._deep import make_deep
from jaxmbrl.algorithms.dyna._tabular import make_tabular
from jaxmbrl.envs._dyna_maze import tabular_num_states


def supports(spec: envs.EnvSpec) -> Optional[str]:
    """Discrete actions. A bare state index fits only the tabular mode; vector
    observations fit the deep mode (and the tabular one when they are one-hot cells)."""
    if not spec.discrete:
        return None
    return "mode=tabular" if spec.obs_shape == () else ""


def make_train(config: Config, *, env=None, model: Optional[models.Model] = None) -> Train:
    """Builds Dyna-Q's pure `init/step/run` for `config` (tabular or deep by `config.mode`).

    Args:
      env: an environment that is not registered: a gymnax env object or `(env, params)`.
      model: deep mode: a `models.Model` (init / fit / step, predicting reward and
        termination) to plan with instead of the ensemble.
    Raises:
      ValueError for an invalid config, an env with continuous actions, a tabular run on
      an env without a finite state index, or a deep run on integer observations;
      `envs.UnknownEnvError` for an unknown env id.
    """
    cfg = config
    cfg.validate()
    env, env_params, spec = resolve_env(cfg, env)
    if not spec.discrete:
        raise ValueError(
            f"Dyna-Q needs discrete actions, but {spec.env_id} has a continuous action space "
            f"(dimension {spec.action_dim}); pick an env with discrete actions such as DynaMaze, "
            f"FrozenLake-misc or CartPole-v1."
        )
    if cfg.mode == "tabular":
        if model is not None:
            raise ValueError("dyna: model= is for mode='deep'; the tabular mode keeps its own table model.")
        num_states = tabular_num_states(env, env_params)
        if num_states is None:
            raise ValueError(
                f"mode='tabular' needs a finite-state env whose observation is a state index or a "
                f"one-hot vector (DynaMaze, FrozenLake-misc); {spec.env_id} observes floats of shape "
                f"{spec.obs_shape}. Use mode='deep' for it."
            )
        return make_tabular(cfg, env, env_params, spec, num_states)
    if spec.obs_shape == ():
        raise ValueError(
            f"mode='deep' feeds observations to a network, but {spec.env_id} observes a bare state "
            f"index; use mode='tabular', or an env with vector observations (DynaMaze is one-hot)."
        )
    termination_fn = None
    if cfg.planning and cfg.termination == "known":
        termination_fn = envs.known_termination(spec.env_id)
        if termination_fn is None:
            raise ValueError(f"jaxmbrl knows no termination function for {spec.env_id}; "
                             f"use termination='learned'.")
    return make_deep(cfg, env, env_params, spec, termination_fn, model)
