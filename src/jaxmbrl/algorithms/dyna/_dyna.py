"""`make_train` for both Dyna-Q modes: validation, then the tabular or the deep loop."""
from __future__ import annotations

from jaxmbrl import envs
from jaxmbrl.algorithms.dyna._config import Config, Train
from jaxmbrl.algorithms.dyna._deep import make_deep
from jaxmbrl.algorithms.dyna._tabular import make_tabular
from jaxmbrl.envs._dyna_maze import tabular_num_states


def make_train(config: Config) -> Train:
    """Builds Dyna-Q's pure `init/step/run` for `config` (tabular or deep by `config.mode`).

    Raises:
      ValueError for an invalid config, an env with continuous actions, a tabular run on
      an env without a finite state index, or a deep run on integer observations;
      `envs.UnknownEnvError` for an unknown env id.
    """
    cfg = config
    cfg.validate()
    env, env_params, spec = envs.make(cfg.env_id, **dict(cfg.env_kwargs))
    if not spec.discrete:
        raise ValueError(
            f"Dyna-Q needs discrete actions, but {cfg.env_id} has a continuous action space "
            f"(dimension {spec.action_dim}); pick an env with discrete actions such as DynaMaze, "
            f"FrozenLake-misc or CartPole-v1."
        )
    if cfg.mode == "tabular":
        num_states = tabular_num_states(env, env_params)
        if num_states is None:
            raise ValueError(
                f"mode='tabular' needs a finite-state env whose observation is a state index or a "
                f"one-hot vector (DynaMaze, FrozenLake-misc); {cfg.env_id} observes floats of shape "
                f"{spec.obs_shape}. Use mode='deep' for it."
            )
        return make_tabular(cfg, env, env_params, spec, num_states)
    if spec.obs_shape == ():
        raise ValueError(
            f"mode='deep' feeds observations to a network, but {cfg.env_id} observes a bare state "
            f"index; use mode='tabular', or an env with vector observations (DynaMaze is one-hot)."
        )
    termination_fn = None
    if cfg.planning and cfg.termination == "known":
        try:
            termination_fn = envs.termination_fn(cfg.env_id, env_params)
        except ValueError as err:
            raise ValueError(f"{err} Use termination='learned' for {cfg.env_id}.") from None
    return make_deep(cfg, env, env_params, spec, termination_fn)
