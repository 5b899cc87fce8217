"""Per-feature standardisation kept in the model state."""
from __future__ import annotations

from typing import NamedTuple

import jax.numpy as jnp

from jaxmbrl.types import Array

# Features that never vary (e.g. a constant action dimension) get unit scale rather
# than an exploding one.
_MIN_STD = 1e-6


class Normaliser(NamedTuple):
    """Per-feature mean and standard deviation, fit on training rows (`fit_normaliser`)."""

    mean: Array  # [F]
    std: Array  # [F]


def identity_normaliser(size: int, dtype=jnp.float32) -> Normaliser:
    return Normaliser(jnp.zeros((size,), dtype), jnp.ones((size,), dtype))


def fit_normaliser(x: Array, mask: Array) -> Normaliser:
    """Mean and std over the rows of `x` [C, F] where `mask` [C] is true."""
    weight = mask.astype(x.dtype)[:, None]
    count = jnp.maximum(weight.sum(), 1.0)
    mean = (x * weight).sum(0) / count
    var = (((x - mean) ** 2) * weight).sum(0) / count
    std = jnp.sqrt(var)
    return Normaliser(mean, jnp.where(std < _MIN_STD, 1.0, std))


def normalise(norm: Normaliser, x: Array) -> Array:
    """`(x - mean) / std` over the last axis: x [..., F]."""
    return (x - norm.mean) / norm.std


def denormalise(norm: Normaliser, x: Array) -> Array:
    """The inverse of `normalise`: `x * std + mean`, x [..., F]."""
    return x * norm.std + norm.mean
