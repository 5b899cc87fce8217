"""A fitted ensemble as a planner's `model_fn` (PETS propagation modes).

Modes (Chua et al. 2018, section 5):
  "ts1": every particle is re-assigned to a random elite at every step;
  "tsinf": every particle keeps one elite for the whole trajectory;
  "expectation": the elites' mean prediction, no sampling (deterministic).

`as_model_fn(ens, ...)` is `as_planner_model_fn(ensemble_model(ens, ...))`: its
`over_particles` steps the P particles of a candidate with one grouped
`ensemble_step` (particle p keeps elite `p * num_elites // P` under TSinf, and gets a
fresh random grouping every step under TS1).
"""
from __future__ import annotations

from typing import Optional

from jaxmbrl.models._ensemble import Ensemble
from jaxmbrl.models._model import PROPAGATIONS, ModelStepFn, ensemble_model
from jaxmbrl.types import RewardFn, TerminationFn

__all__ = ["PROPAGATIONS", "EnsembleModelFn", "as_model_fn"]


class EnsembleModelFn(ModelStepFn):
    """A `ModelFn` over a `ModelState`, with a grouped `over_particles` fast path."""

    def __init__(
        self,
        ens: Ensemble,
        propagation: str = "ts1",
        reward_fn: Optional[RewardFn] = None,
        termination_fn: Optional[TerminationFn] = None,
        sample: bool = True,
    ):
        model = ensemble_model(ens, propagation=propagation, sample=sample, reward_fn=reward_fn,
                               termination_fn=termination_fn)
        super().__init__(model.step)
        self.ens = ens
        self.model = model
        self.propagation = propagation
        self.reward_fn = reward_fn
        self.termination_fn = termination_fn
        self.sample = sample and ens.config.probabilistic and propagation != "expectation"


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
