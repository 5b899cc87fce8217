"""The one fully connected network (flax.linen) behind the ensemble members and the agents."""
from __future__ import annotations

import functools
from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

_DENSE = lambda x: (((x.ndim - 1,), (0,)), ((), ()))  # noqa: E731  x [..., In] . kernel [In, Out]


@functools.lru_cache(maxsize=None)
def _narrow_dense_dot(dtype) -> Callable:
    """Dense's product `x [..., In] @ kernel [In, Out]` with all three of its products
    (forward, input gradient, kernel gradient) in `dtype`, each accumulating and
    returning float32.

    Written as a `custom_vjp` because autodiff through `astype` would run the backward
    products on the float32 cotangent (at the float32 rate, after converting the narrow
    kernel back) and round the kernel's float32 gradient through `dtype` and back. Here
    the cotangent is narrowed once and the float32 parameters get float32 gradients.
    """

    # Leading dims are flattened to one row axis: XLA's CPU runtime has no bf16 kernel for
    # a vector-matrix product (an unbatched observation), but does for a 1-row matrix.
    def product(a, b):
        return lax.dot_general(a, b, (((1,), (0,)), ((), ())), preferred_element_type=jnp.float32)

    @jax.custom_vjp
    def dot(x, kernel):
        return forward(x, kernel)[0]

    def forward(x, kernel):
        xn, kn = x.reshape(-1, x.shape[-1]).astype(dtype), kernel.astype(dtype)
        return product(xn, kn).reshape(x.shape[:-1] + kernel.shape[1:]), (xn, kn)

    def backward(residuals, g):
        xn, kn = residuals
        gn = g.reshape(-1, g.shape[-1]).astype(dtype)
        return product(gn, kn.T).reshape(g.shape[:-1] + kn.shape[:1]), product(xn.T, gn)

    dot.defvjp(forward, backward)

    def dot_general(lhs, rhs, dimension_numbers, precision=None, preferred_element_type=None):
        del precision, preferred_element_type  # always float32 results
        if dimension_numbers != _DENSE(lhs) or rhs.ndim != 2:
            raise ValueError(f"expected a Dense product, got dimension numbers {dimension_numbers}.")
        return dot(lhs, rhs)

    return dot_general


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
        # A narrow Dense keeps float32 inputs and kernel (no promotion) and narrows them
        # inside its product, so that the backward products are narrow too.
        dense = functools.partial(nn.Dense, dtype=jnp.float32, param_dtype=jnp.float32,
                                  dot_general=_narrow_dense_dot(jnp.dtype(self.dtype)) if narrow else lax.dot_general)
        x = x.astype(jnp.float32)
        for width in self.hidden_sizes:
            x = dense(width, use_bias=not self.layer_norm)(x).astype(jnp.float32)
            if self.layer_norm:
                x = nn.LayerNorm(dtype=jnp.float32, param_dtype=jnp.float32)(x)
            x = self.activation(x)
        return dense(self.out_size, kernel_init=self.output_kernel_init)(x).astype(jnp.float32)
