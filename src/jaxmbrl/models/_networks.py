"""The one fully connected network (flax.linen) behind the ensemble members and the agents."""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp
from jax import lax

# Products in a narrow dtype accumulate and return float32: on CPUs with bf16 dot
# instructions this is the fast path (a bfloat16 result is not), and the bias,
# activation and output keep float32 precision.
_dot_float32 = functools.partial(lax.dot_general, preferred_element_type=jnp.float32)


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
      dtype: dtype of the matrix products' inputs (parameters are always float32, and
        products accumulate in float32; bias, activation and output are float32).
    """

    hidden_sizes: Sequence[int]
    out_size: int
    activation: Callable[[Any], Any] = nn.silu
    layer_norm: bool = False
    output_kernel_init: Callable[..., Any] = nn.linear.default_kernel_init
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        narrow = jnp.dtype(self.dtype) != jnp.float32
        dense = functools.partial(nn.Dense, dtype=self.dtype, param_dtype=jnp.float32,
                                  dot_general=_dot_float32 if narrow else lax.dot_general)
        x = x.astype(jnp.float32)
        for width in self.hidden_sizes:
            x = dense(width, use_bias=not self.layer_norm)(x).astype(jnp.float32)
            if self.layer_norm:
                x = nn.LayerNorm(dtype=jnp.float32, param_dtype=jnp.float32)(x)
            x = self.activation(x)
        return dense(self.out_size, kernel_init=self.output_kernel_init)(x).astype(jnp.float32)
