"""The one fully connected network (flax.linen) behind the ensemble members and the agents."""
from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp


class MLP(nn.Module):
    """Fully connected network [..., In] -> [..., out_size].

    Each hidden layer is Dense -> activation, or Dense (no bias) -> LayerNorm ->
    activation with `layer_norm` (DreamerV3's block: the norm's offset replaces the
    bias). The output layer is a plain Dense. Parameters are named `Dense_i` and
    `LayerNorm_i` in layer order, so a module that shares its scope with an `MLP`
    (`nn.share_scope`) keeps the parameter tree, and the initial values, of a network
    that wrote the same layers inline.

    Attributes:
      hidden_sizes: widths of the hidden layers.
      out_size: width of the output.
      activation: applied after every hidden layer (SiLU by default).
      layer_norm: normalise each hidden layer before its activation.
      output_kernel_init: initialiser of the output kernel; `nn.initializers.zeros`
        makes a head start out predicting its bias (zero).
      dtype: computation dtype (parameters are always float32).
    """

    hidden_sizes: Sequence[int]
    out_size: int
    activation: Callable[[Any], Any] = nn.silu
    layer_norm: bool = False
    output_kernel_init: Callable[..., Any] = nn.linear.default_kernel_init
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        x = x.astype(self.dtype)
        for width in self.hidden_sizes:
            x = nn.Dense(width, use_bias=not self.layer_norm, dtype=self.dtype, param_dtype=jnp.float32)(x)
            if self.layer_norm:
                x = nn.LayerNorm(dtype=self.dtype, param_dtype=jnp.float32)(x)
            x = self.activation(x)
        return nn.Dense(self.out_size, kernel_init=self.output_kernel_init, dtype=self.dtype,
                        param_dtype=jnp.float32)(x)
