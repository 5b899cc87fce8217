"""The one optimiser convention of the package: Adam whose floats live in its state.

`adam(...)` wraps `optax.inject_hyperparams`, so the learning rate (and the clip norm
and coupled weight decay when used) are arrays inside the optimiser state rather than
constants baked into the compiled program: a learner takes them from its traced
hyperparameters, and a sweep over them under `vmap` is one program.
`optimizer_step(opt, grads, opt_state, params, learning_rate=...)` writes the values it
is given into the state, then takes the step; values left out keep what the state holds
(what `init` or an earlier step put there).
"""
from __future__ import annotations

from typing import Any, Optional, Tuple

import jax.numpy as jnp
import optax

from jaxmbrl.types import Params


def adam(
    learning_rate: Any = 1e-3,
    *,
    eps: float = 1e-8,
    max_grad_norm: Optional[Any] = None,
    weight_decay: Optional[Any] = None,
) -> optax.GradientTransformation:
    """Adam with injectable floats.

    Args:
      learning_rate: the step size stored by `init` (override it per step with
        `optimizer_step(..., learning_rate=...)`).
      eps: Adam's epsilon (static).
      max_grad_norm: None, or clip gradients to this global norm first (injectable).
      weight_decay: None, or add `weight_decay * params` to the gradient before Adam:
        coupled L2 decay, PETS' weight penalty (injectable).
    """
    clip, decay = max_grad_norm is not None, weight_decay is not None

    def chain(learning_rate, max_grad_norm=None, weight_decay=None):
        parts = []
        if clip:
            parts.append(optax.clip_by_global_norm(max_grad_norm))
        if decay:
            parts.append(optax.add_decayed_weights(weight_decay))
        parts.append(optax.adam(learning_rate, eps=eps))
        return optax.chain(*parts)

    floats = {"learning_rate": learning_rate}
    if clip:
        floats["max_grad_norm"] = max_grad_norm
    if decay:
        floats["weight_decay"] = weight_decay
    # Stored as float32 so that a state carried through `lax.scan` keeps one type
    # whichever Python floats or traced values later overwrite them.
    return optax.inject_hyperparams(chain, hyperparam_dtype=jnp.float32)(**floats)


def set_hyperparams(opt_state, **values) -> Any:
    """A copy of an `adam` state with the given floats replaced (None leaves one as is).

    Raises:
      KeyError: for a name the optimiser was not built with.
    """
    hyper = dict(opt_state.hyperparams)
    for name, value in values.items():
        if value is None:
            continue
        if name not in hyper:
            raise KeyError(f"The optimiser has no injectable {name!r}; it has {sorted(hyper)}.")
        hyper[name] = jnp.asarray(value, hyper[name].dtype)
    return opt_state._replace(hyperparams=hyper)


def optimizer_step(
    opt: optax.GradientTransformation, grads: Params, opt_state, params: Params, **values
) -> Tuple[Params, Any]:
    """One step of an `adam` optimiser: `(new_params, new_opt_state)`.

    `values` (e.g. `learning_rate=hp.actor_learning_rate`) are written into the state
    first; see `set_hyperparams`.
    """
    if values:
        opt_state = set_hyperparams(opt_state, **values)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state
