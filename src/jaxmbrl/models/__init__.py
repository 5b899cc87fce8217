"""Dynamics models: Gaussian ensembles, normalisers, losses, propagation."""
from jaxmbrl.models._ensemble import (
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
    model_inputs,
    model_targets,
    open_loop_error,
    predict,
)
from jaxmbrl.models._networks import MLP
from jaxmbrl.models._normaliser import Normaliser, denormalise, fit_normaliser, normalise
from jaxmbrl.models._propagation import PROPAGATIONS, EnsembleModelFn, as_model_fn

__all__ = [
    "MLP",
    "PROPAGATIONS",
    "Ensemble",
    "EnsembleConfig",
    "EnsembleModelFn",
    "EvalMetrics",
    "FitInfo",
    "ModelState",
    "Normaliser",
    "Prediction",
    "as_model_fn",
    "denormalise",
    "evaluate",
    "fit",
    "fit_normaliser",
    "init_model",
    "make_ensemble",
    "member_losses",
    "model_inputs",
    "model_targets",
    "normalise",
    "open_loop_error",
    "predict",
]
