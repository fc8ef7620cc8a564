"""The paper's network: dilated depthwise separable convolutions.

Sun, Zhou, Zhang, He, "A Lightweight Neural Network Combining Dilated
Convolution and Depthwise Separable Convolution". What δ means, and its
arithmetic, is flaxdil.models.dilation; the convolutions are flaxdil.models.layers.
"""

from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from flaxdil.models.layers import GlobalAvgPool, Layers, ReLU, classifier_head


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


def _basic_structures(module: nn.Module, images: jax.Array, train: bool
                      ) -> dict[str, jax.Array]:
  """The network's input and its basic structures, as submodules of
  `module` (call inside a compact method): {'block1' … 'blockN'}, each
  block's output. DilatedNet and DilatedBackbone share them, and so their
  parameters' names."""
  x = module.layers.network_input(images)
  features = {}
  for i, (width, stride, dilation) in enumerate(
      zip(module.widths, module.strides, module.dilations)):
    x = BasicStructure(width, dilation, stride, module.layers,
                       name=f'block{i + 1}')(x, train=train)
    features[f'block{i + 1}'] = x
  return features


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
    features = _basic_structures(self, images, train)
    return classifier_head(self.layers, features[f'block{len(features)}'],
                           self.num_classes)


class DilatedBackbone(nn.Module):
  """The network without its head, for another Flax module to call: the
  features after each basic structure and after global average pooling.

  Its parameters are DilatedNet's without 'classifier', under the same
  names, so a trained network's variables load as they are
  (flaxdil.pretrained.Pretrained.backbone). Takes normalised images, as
  DilatedNet does; returns {'block1' … 'block9': [B, H, W, C], 'pooled':
  [B, C]}.
  """
  widths: Sequence[int]
  strides: Sequence[int]
  dilations: Sequence[int]
  layers: Layers

  @nn.compact
  def __call__(self, images: jax.Array, *, train: bool = False
               ) -> dict[str, jax.Array]:
    features = _basic_structures(self, images, train)
    features['pooled'] = GlobalAvgPool(name='pool')(
        features[f'block{len(features)}'])
    return features
