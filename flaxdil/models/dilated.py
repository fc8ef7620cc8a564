"""The paper's network: dilated depthwise separable convolutions.

Sun, Zhou, Zhang, He, "A Lightweight Neural Network Combining Dilated
Convolution and Depthwise Separable Convolution". What δ means, and its
arithmetic, is flaxdil.models.dilation; the convolutions are flaxdil.models.layers.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from flaxdil.models.layers import Layers, ReLU, classifier_head


class JointModule(nn.Module):
  """Dilated depthwise convolution followed by a 1×1 pointwise convolution."""
  features: int
  dilation: int
  strides: int
  layers: Layers

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    x = self.layers.depthwise(dilation=self.dilation, strides=self.strides,
                              name='depthwise')(x)
    # No bias: the BatchNorm that follows every joint module has its own.
    return self.layers.pointwise(self.features, name='pointwise')(x)


class BasicStructure(nn.Module):
  """Joint module → BatchNorm → ReLU."""
  features: int
  dilation: int
  strides: int
  layers: Layers

  @nn.compact
  def __call__(self, x: jax.Array, *, train: bool) -> jax.Array:
    x = JointModule(self.features, self.dilation, self.strides, self.layers,
                    name='joint')(x)
    x = self.layers.batch_norm(train)(name='bn')(x)
    return ReLU(name='relu')(x)


class DilatedNet(nn.Module):
  """Basic structures, global average pooling, one Dense layer.

  One entry of widths, strides and dilations (δ, checked by
  flaxdil.config.rules) per basic structure. Softmax is not applied
  here: the logits go to the cross-entropy loss.
  """
  num_classes: int
  widths: Sequence[int]
  strides: Sequence[int]
  dilations: Sequence[int]
  layers: Layers

  def describe(self) -> str:
    """What the config chose beyond the model's name, for the training log."""
    deltas = tuple(self.dilations)
    return f'δ={deltas[0] if len(set(deltas)) == 1 else deltas}'

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool) -> jax.Array:
    x = self.layers.network_input(images)
    for i, (width, stride, dilation) in enumerate(
        zip(self.widths, self.strides, self.dilations)):
      x = BasicStructure(width, dilation, stride, self.layers,
                         name=f'block{i + 1}')(x, train=train)
    return classifier_head(self.layers, x, self.num_classes)
