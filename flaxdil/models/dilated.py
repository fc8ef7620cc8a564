"""The paper's network: dilated depthwise separable convolutions.

Sun, Zhou, Zhang, He, "A Lightweight Neural Network Combining Dilated
Convolution and Depthwise Separable Convolution".

Vocabulary used throughout flaxdil:
  * ``dilation`` (δ) is the *paper's* dilation rate: an S×S filter with rate δ
    covers C = (S+1)·δ + S pixels, i.e. (S+1)·δ zeros are spread between the
    S taps of each row. δ = 0 is an ordinary 3×3 filter.
  * ``lax_dilation`` is what `lax.conv_general_dilated(rhs_dilation=...)`
    expects: the distance between neighbouring taps, 2δ + 1 for S = 3.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax
from flaxdil.ops import depthwise as depthwise_ops

KERNEL_SIZE = 3  # S in the paper: every depthwise filter is 3×3.


def lax_dilation(dilation: int, kernel_size: int = KERNEL_SIZE) -> int:
  """Maps the paper's δ to lax's rhs_dilation (tap spacing)."""
  if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 0:
    raise ValueError(
        f'dilation (the paper\'s δ) must be an integer >= 0, got {dilation!r}; '
        'use 0 for an ordinary 3x3 filter, 1 for 7x7, 2 for 11x11.')
  # C = (S+1)δ + S taps wide  <=>  (S-1)·r + 1 = C  <=>  r = ((S+1)δ)/(S-1) + 1.
  spread = (kernel_size + 1) * dilation
  if spread % (kernel_size - 1):
    raise ValueError(f'δ={dilation} has no integer tap spacing for a '
                     f'{kernel_size}x{kernel_size} filter')
  return spread // (kernel_size - 1) + 1


def receptive_field(dilation: int, kernel_size: int = KERNEL_SIZE) -> int:
  """The paper's C = (S+1)·δ + S: the span of one dilated S×S filter."""
  return (kernel_size + 1) * dilation + kernel_size


class DilatedDepthwiseConv(nn.Module):
  """A 3×3 depthwise convolution with a dilated filter.

  The kernel has layout (3, 3, 1, C) (HWIO with one input channel per group),
  the spatial size is kept (stride 1) or divided by the stride (rounding up),
  by symmetric zero padding of half the dilated filter span.

  impl: 'lax' (`lax.conv_general_dilated` with feature_group_count=C) or
  'sliced' (the same function as nine slices with a hand-written backward,
  much faster on XLA:CPU); see flaxdil.ops.depthwise. Both use the same
  parameters.
  """
  dilation: int = 0
  strides: int = 1
  impl: str = 'lax'
  kernel_init: Any = nn.initializers.variance_scaling(
      2.0, 'fan_in', 'truncated_normal')
  dtype: Any = jnp.float32

  @property
  def lax_dilation(self) -> int:
    return lax_dilation(self.dilation)

  @property
  def padding(self) -> tuple[tuple[int, int], tuple[int, int]]:
    half_span = self.lax_dilation * (KERNEL_SIZE - 1) // 2
    return ((half_span, half_span), (half_span, half_span))

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    channels = x.shape[-1]
    kernel = self.param('kernel', self.kernel_init,
                        (KERNEL_SIZE, KERNEL_SIZE, 1, channels), jnp.float32)
    conv = {'lax': depthwise_ops.depthwise_lax,
            'sliced': depthwise_ops.depthwise_sliced}[self.impl]
    return conv(x.astype(self.dtype), kernel.astype(self.dtype),
                self.strides, self.lax_dilation)


class PointwiseConv(nn.Module):
  """A 1×1 convolution without bias; kernel layout (1, 1, C_in, C_out).

  impl 'lax' is a convolution; 'matmul' the same product as one
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
    if self.impl == 'matmul':
      y = jnp.dot(x.reshape(-1, x.shape[-1]), kernel[0, 0])
      return y.reshape(x.shape[:-1] + (self.features,))
    return lax.conv_general_dilated(
        x, kernel, (1, 1), 'VALID', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@dataclasses.dataclass(frozen=True)
class Implementation:
  """Which kernels compute a joint module; parameters are the same for all."""
  depthwise: str = 'lax'     # 'lax' | 'sliced'
  pointwise: str = 'lax'     # 'lax' | 'matmul'


LAX = Implementation('lax', 'lax')
FAST_CPU = Implementation('sliced', 'matmul')


class JointModule(nn.Module):
  """Dilated depthwise convolution followed by a 1×1 pointwise convolution."""
  features: int
  dilation: int = 0
  strides: int = 1
  impl: Implementation = LAX
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = DilatedDepthwiseConv(dilation=self.dilation, strides=self.strides,
                             impl=self.impl.depthwise, dtype=self.dtype,
                             name='depthwise')(x)
    # No bias: the BatchNorm that follows every joint module has its own.
    return PointwiseConv(self.features, impl=self.impl.pointwise,
                         dtype=self.dtype, name='pointwise')(x)


class BasicStructure(nn.Module):
  """Joint module → BatchNorm → ReLU."""
  features: int
  dilation: int = 0
  strides: int = 1
  bn_momentum: float = 0.9
  axis_name: str | None = None
  impl: Implementation = LAX
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = JointModule(self.features, self.dilation, self.strides, self.impl,
                    dtype=self.dtype, name='joint')(x)
    # axis_name makes the batch statistics global under pmap, so every
    # device normalises with the same mean/variance and the replicas agree.
    x = nn.BatchNorm(use_running_average=not train, momentum=self.bn_momentum,
                     axis_name=self.axis_name if train else None,
                     dtype=self.dtype, name='bn')(x)
    return nn.relu(x)


class DilatedNet(nn.Module):
  """Basic structures, global average pooling, one Dense layer.

  Softmax is not applied here: the logits go to the cross-entropy loss.
  """
  num_classes: int
  widths: Sequence[int]
  strides: Sequence[int]
  dilations: Sequence[int]
  bn_momentum: float = 0.9
  axis_name: str | None = None
  impl: Implementation = LAX
  dtype: Any = jnp.float32

  def __post_init__(self):
    if not len(self.widths) == len(self.strides) == len(self.dilations):
      raise ValueError(
          'widths, strides and dilations need one entry per basic structure, '
          f'got {len(self.widths)}, {len(self.strides)}, {len(self.dilations)}')
    for dilation in self.dilations:
      lax_dilation(dilation)  # Fail at construction, not deep inside a trace.
    super().__post_init__()

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    x = images
    for i, (width, stride, dilation) in enumerate(
        zip(self.widths, self.strides, self.dilations)):
      x = BasicStructure(width, dilation, stride, self.bn_momentum,
                         self.axis_name, self.impl, self.dtype,
                         name=f'block{i + 1}')(x, train=train)
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.num_classes, dtype=self.dtype, name='classifier')(
        x).astype(jnp.float32)
