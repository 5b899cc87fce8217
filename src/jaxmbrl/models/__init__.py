"""Dynamics models: the model protocol, Gaussian ensembles, the batched model step,
normalisers, losses, propagation, the shared MLP and optimiser, and the RSSM world model
of Dreamer.

The model protocol
------------------
PETS, MBPO and deep Dyna take any `Model` (`make_train(config, model=...)`): a
NamedTuple of three pure functions over the model's own state pytree, and an optional
fourth (jit, vmap and scan safe; every float setting arrives as a traced `ModelHParams`):

    init(key, example: Transition, hparams: ModelHParams) -> state
        `example` is one unbatched transition (shapes and dtypes only).
    fit(key, state, buffer_state: buffers.BufferState, hparams) -> (state, ModelFitInfo)
        learns from the filled part of a replay buffer of `Transition`s [C, ...].
    step(key, state, obs [N, *obs_shape], action [N] int32 or [N, A])
        -> (next_obs [N, *obs_shape], reward [N] float32, terminated [N] bool)
    member_means(state, obs [N, ...], action [N, ...]) -> [K, N, D]   (optional)
        the K members' predicted next-observation means, for disagreement bonuses.

`ModelHParams(learning_rate (0, inf), weight_decay [0, inf), holdout_ratio [0, 1))`;
a model reads the ones it needs. `ModelFitInfo(train_loss [], holdout_mse [], epochs [])`
are float32 scalars, NaN where a model does not measure one (`epochs` may be left out:
a closed-form fit has none).

`ensemble_model(ens, propagation=..., ...)` is the Gaussian ensemble behind the
protocol; `jaxmbrl.testing.linear_model(spec)` is a closed-form least-squares one
written against the protocol alone. `as_planner_model_fn(model)` gives planners a
`model_fn` whose `over_particles` steps all particles of a candidate in one `step`, and
whose `over_population` steps every particle of every candidate in one `step`.

Every ensemble step goes through `ensemble_step` (rows grouped by elite, one dense
matrix product per elite) and `sample_prediction` (Gaussian draw or mean; learned or
known reward and termination).

MuZero's model (`make_muzero_model`: representation, dynamics with reward, prediction of
policy and value over a latent state) and the two-hot categorical heads it uses
(`two_hot`, `from_logits`, `head_loss`: bins evenly spaced in symlog space) live here too,
as do TD-MPC2's networks (`make_tdmpc2_model`: SimNorm encoder and dynamics, reward, Q
ensemble and policy prior) and its `consistency_loss`.
"""
from jaxmbrl.models._ensemble import (
    ACTIVATIONS,
    COMPUTE_DTYPES,
    Ensemble,
    EnsembleConfig,
    EvalMetrics,
    FitInfo,
    ModelState,
    Prediction,
    evaluate,
    fit,
    init_model,
    make_ensemble,
    member_losses,
    member_sharding,
    model_inputs,
    model_targets,
    open_loop_error,
    predict,
)
from jaxmbrl.models._model import (
    MODEL_HPARAM_RANGES,
    PROPAGATIONS,
    Model,
    ModelFitInfo,
    ModelHParams,
    ModelStepFn,
    as_planner_model_fn,
    ensemble_model,
)
from jaxmbrl.models._muzero import (
    MuZeroModel,
    MuZeroNetConfig,
    from_logits,
    head_loss,
    make_muzero_model,
    two_hot,
)
from jaxmbrl.models._networks import MLP
from jaxmbrl.models._tdmpc2 import TDMPC2Model, TDMPC2NetConfig, consistency_loss, make_tdmpc2_model, simnorm
from jaxmbrl.models._normaliser import Normaliser, denormalise, fit_normaliser, normalise
from jaxmbrl.models._optim import adam, optimizer_step, set_hyperparams
from jaxmbrl.models._propagation import EnsembleModelFn, as_model_fn
from jaxmbrl.models._step import ASSIGNMENTS, ensemble_step, fixed_groups, member_means, sample_prediction
from jaxmbrl.models._rssm import (
    RSSM,
    KLTerms,
    Observed,
    RSSMConfig,
    RSSMState,
    WorldModelInfo,
    categorical_kl,
    continue_logit,
    decode,
    encode,
    features,
    filter_step,
    imagine,
    img_step,
    initial_state,
    kl_balanced,
    latent_model_fn,
    make_rssm,
    obs_step,
    observe,
    reward,
    symexp,
    symlog,
    world_model_loss,
)

__all__ = [
    "ASSIGNMENTS",
    "ACTIVATIONS",
    "COMPUTE_DTYPES",
    "Ensemble",
    "EnsembleConfig",
    "EnsembleModelFn",
    "EvalMetrics",
    "FitInfo",
    "KLTerms",
    "MLP",
    "MODEL_HPARAM_RANGES",
    "Model",
    "ModelFitInfo",
    "ModelHParams",
    "ModelState",
    "ModelStepFn",
    "MuZeroModel",
    "MuZeroNetConfig",
    "Normaliser",
    "Observed",
    "PROPAGATIONS",
    "Prediction",
    "RSSM",
    "RSSMConfig",
    "RSSMState",
    "TDMPC2Model",
    "TDMPC2NetConfig",
    "WorldModelInfo",
    "adam",
    "as_model_fn",
    "as_planner_model_fn",
    "categorical_kl",
    "consistency_loss",
    "continue_logit",
    "decode",
    "denormalise",
    "encode",
    "ensemble_model",
    "ensemble_step",
    "evaluate",
    "features",
    "filter_step",
    "fit",
    "fit_normaliser",
    "fixed_groups",
    "from_logits",
    "head_loss",
    "imagine",
    "img_step",
    "init_model",
    "initial_state",
    "kl_balanced",
    "latent_model_fn",
    "make_ensemble",
    "make_muzero_model",
    "make_rssm",
    "make_tdmpc2_model",
    "member_losses",
    "member_sharding",
    "member_means",
    "model_inputs",
    "model_targets",
    "normalise",
    "obs_step",
    "observe",
    "open_loop_error",
    "optimizer_step",
    "predict",
    "reward",
    "sample_prediction",
    "set_hyperparams",
    "simnorm",
    "symexp",
    "symlog",
    "two_hot",
    "world_model_loss",
]
