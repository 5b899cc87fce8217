"""Networks (flax.linen)."""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
    """Fully connected network: `hidden_sizes` SiLU layers, then a linear output."""

    hidden_sizes: Sequence[int]
    out_size: int
    activation: Callable = nn.silu
    dtype: jnp.dtype = jnp.float32

    @nn.compact
    def __call__(self, x):
        for width in self.hidden_sizes:
            x = self.activation(nn.Dense(width, dtype=self.dtype, param_dtype=jnp.float32)(x))
        return nn.Dense(self.out_size, dtype=self.dtype, param_dtype=jnp.float32)(x)
