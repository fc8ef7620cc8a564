"""The layers every network is built from, bound once from the config.

`bind` fixes the settings that the config decides for all layers of a model
(kernel implementation, compute dtype, BatchNorm momentum and pmap axis
name) in one `Layers` of constructors; networks and their blocks take it as
a field and call its constructors with only what differs per layer, as
google/flax's examples/imagenet passes `conv` and `norm` partials down.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from flaxdil.models import depthwise as depthwise_ops
from flaxdil.models.dilation import KERNEL_SIZE, lax_dilation

ModuleDef = Callable[..., nn.Module]

# config.conv_impl once 'auto' is resolved: which kernels compute the
# depthwise and 1×1 convolutions. Both compute the same function with the
# same parameters.
CONV_IMPLS = ('lax', 'fast')


class DilatedDepthwiseConv(nn.Module):
  """A 3×3 depthwise convolution whose filter is dilated by the paper's δ.

  The kernel has layout (3, 3, 1, C) (HWIO with one input channel per group);
  the spatial size is kept (stride 1) or divided by the stride (rounding up)
  by symmetric zero padding of half the dilated filter span.

  impl: 'lax' (`lax.conv_general_dilated` with feature_group_count=C) or
  'fast' (the same function as nine slices with a hand-written backward,
  much faster on XLA:CPU); see flaxdil.models.depthwise.
  """
  dilation: int = 0
  strides: int = 1
  impl: str = 'lax'
  kernel_init: Any = nn.initializers.variance_scaling(
      2.0, 'fan_in', 'truncated_normal')
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    kernel = self.param('kernel', self.kernel_init,
                        (KERNEL_SIZE, KERNEL_SIZE, 1, channels), jnp.float32)
    conv = {'lax': depthwise_ops.depthwise_lax,
            'fast': depthwise_ops.depthwise_sliced}[self.impl]
    return conv(x.astype(self.dtype), kernel.astype(self.dtype),
                self.strides, lax_dilation(self.dilation))


class PointwiseConv(nn.Module):
  """A 1×1 convolution without bias; kernel layout (1, 1, C_in, C_out).

  impl 'lax' is a convolution; 'fast' the same product as one
  (N·H·W, C_in) × (C_in, C_out) matrix multiply, whose backward XLA:CPU runs
  several times faster than a 1×1 convolution's.
  """
  features: int
  impl: str = 'lax'
  kernel_init: Any = nn.initializers.he_normal()
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param('kernel', self.kernel_init,
                        (1, 1, x.shape[-1], self.features), jnp.float32)
    x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
    if self.impl == 'fast':
      y = jnp.dot(x.reshape(-1, x.shape[-1]), kernel[0, 0])
      return y.reshape(x.shape[:-1] + (self.features,))
    return lax.conv_general_dilated(
        x, kernel, (1, 1), 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


class Resize(nn.Module):
  """Bilinear resize of (N, H, W, C) images to size×size, with half-pixel
  centres and no antialiasing: for enlarging (what config.image_size is
  for), antialiasing changes nothing, and without it the resize is exactly
  ONNX's linear Resize, so the exported model computes the same."""
  size: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    n, _, _, c = x.shape
    return jax.image.resize(x, (n, self.size, self.size, c), 'bilinear',
                            antialias=False)


@dataclasses.dataclass(frozen=True)
class Layers:
  """Constructors of a model's layers with the config's settings bound."""
  depthwise: ModuleDef  # DilatedDepthwiseConv(dilation=, strides=)
  pointwise: ModuleDef  # PointwiseConv(features)
  conv: ModuleDef       # nn.Conv(features, kernel_size, strides): no bias, SAME
  dense: ModuleDef      # nn.Dense(features)
  norm: ModuleDef       # nn.BatchNorm(use_running_average=)
  image_size: int | None = None  # The size the network sees (None: as given).

  def network_input(self, images: jax.Array) -> jax.Array:
    """The images at the size the network sees: the first operation of every
    network (a step of its computation that inspection and export see).
    Call inside a compact method; without an image_size, nothing."""
    if self.image_size is None:
      return images
    return Resize(self.image_size, name='resize')(images)

  def batch_norm(self, train: bool) -> ModuleDef:
    """BatchNorm for a forward pass: batch statistics (global across the
    pmap axis, so every device normalises alike) when training, the running
    averages otherwise."""
    return functools.partial(self.norm, use_running_average=not train)


def bind(conv_impl: str, dtype: Any = jnp.float32, bn_momentum: float = 0.9,
         axis_name: str | None = None, image_size: int | None = None
         ) -> Layers:
  """conv_impl: 'lax' or 'fast' (see CONV_IMPLS)."""
  return Layers(
      image_size=image_size,
      depthwise=functools.partial(DilatedDepthwiseConv, impl=conv_impl,
                                  dtype=dtype),
      pointwise=functools.partial(PointwiseConv, impl=conv_impl, dtype=dtype),
      conv=functools.partial(nn.Conv, padding='SAME', use_bias=False,
                             dtype=dtype),
      dense=functools.partial(nn.Dense, dtype=dtype),
      norm=functools.partial(nn.BatchNorm, momentum=bn_momentum,
                             axis_name=axis_name, dtype=dtype))


# Parameter-free operations as modules: each is then a named step of the
# computation that inspection records (flaxdil.inspection.summary), with no
# effect on parameters or arithmetic.


class ReLU(nn.Module):
  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return nn.relu(x)


class GlobalAvgPool(nn.Module):
  """Mean over height and width: (N, H, W, C) → (N, C)."""

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return jnp.mean(x, axis=(1, 2))


class MaxPool(nn.Module):
  window: int
  strides: int
  padding: str = 'SAME'

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return nn.max_pool(x, (self.window,) * 2, (self.strides,) * 2,
                       padding=self.padding)


class Concat(nn.Module):
  """Concatenation along channels of several inputs."""

  @nn.compact
  def __call__(self, *xs: jax.Array) -> jax.Array:
    return jnp.concatenate(xs, axis=-1)


class Flatten(nn.Module):
  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    return x.reshape(x.shape[0], -1)


def classifier_head(layers: Layers, x: jax.Array, num_classes: int
                    ) -> jax.Array:
  """Global average pooling and one dense layer to float32 logits (softmax
  is left to the loss). Call inside a compact method: the dense layer is
  the caller's submodule 'classifier'."""
  x = GlobalAvgPool(name='pool')(x)
  return layers.dense(num_classes, name='classifier')(x).astype(jnp.float32)
