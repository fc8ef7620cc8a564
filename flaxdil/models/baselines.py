"""The paper's Table 1 baselines: MobileNet v1, SqueezeNet, GoogLeNet, VGG16.

Each is built in two forms that share their blocks:
  * stem='imagenet': the published 224×224 network with a 1000-class head,
    to check parameter counts against the paper's Table 1 (4.2 M, 1.25 M,
    6.8 M, 138 M);
  * stem='cifar': the same body for 32×32 images, the way these networks
    are usually trained on CIFAR-10: the stem's early downsampling is
    dropped (so the last feature map is not smaller than a pixel) and the
    head has num_classes outputs.

Every convolution is followed by BatchNorm (the published VGG16, GoogLeNet
and SqueezeNet have none; BatchNorm makes all five networks trainable with
one recipe and adds 0.01–0.1 % parameters). BatchNorm takes the pmap axis
name, like the dilated network's.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from flaxdil.models.layers import (Concat, Flatten, GlobalAvgPool, Layers,
                                   MaxPool, ReLU, classifier_head)

STEMS = ('cifar', 'imagenet')


class ConvBN(nn.Module):
  """Convolution (no bias) → BatchNorm → ReLU."""
  features: int
  kernel: int
  strides: int
  layers: Layers

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = self.layers.conv(self.features, (self.kernel, self.kernel),
                         (self.strides, self.strides), name='conv')(x)
    x = self.layers.batch_norm(train)(name='bn')(x)
    return ReLU(name='relu')(x)


def _max_pool(x, window: int = 3, strides: int = 2, *, name: str):
  return MaxPool(window, strides, name=name)(x)


def _conv_bn(module, features: int, kernel: int, strides: int = 1, *,
             name: str) -> ConvBN:
  """A ConvBN built from the layers of `module`, the block that owns it."""
  return ConvBN(features, kernel, strides, module.layers, name=name)


class _Baseline(nn.Module):
  """What every baseline network is configured with (see create_model)."""
  num_classes: int
  layers: Layers
  stem: str = 'cifar'

  def describe(self) -> str:
    """What the config chose beyond the model's name, for the training log."""
    return f'{self.stem} stem'


# --- MobileNet v1 (Howard et al., 2017), width multiplier 1.0 ---------------

# (features, stride) of the 13 depthwise separable blocks.
_MOBILENET_BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1),
                     (512, 2), (512, 1), (512, 1), (512, 1), (512, 1),
                     (512, 1), (1024, 2), (1024, 1))


class MobileNetBlock(nn.Module):
  """3×3 depthwise → BN → ReLU → 1×1 pointwise → BN → ReLU."""
  features: int
  strides: int
  layers: Layers

  @nn.compact
  def __call__(self, x, *, train: bool):
    norm = self.layers.batch_norm(train)
    x = self.layers.depthwise(dilation=0, strides=self.strides,
                              name='depthwise')(x)
    x = ReLU(name='relu_depthwise')(norm(name='bn_depthwise')(x))
    x = self.layers.pointwise(self.features, name='pointwise')(x)
    return ReLU(name='relu_pointwise')(norm(name='bn_pointwise')(x))


class MobileNetV1(_Baseline):

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = self.layers.network_input(x)
    # ImageNet: a stride-2 stem (224 → 112 → … → 7); CIFAR: stride 1
    # (32 → … → 2).
    x = _conv_bn(self, 32, 3, 2 if self.stem == 'imagenet' else 1,
                 name='stem')(x, train=train)
    for i, (features, strides) in enumerate(_MOBILENET_BLOCKS):
      x = MobileNetBlock(features, strides, self.layers,
                         name=f'block{i + 1}')(x, train=train)
    return classifier_head(self.layers, x, self.num_classes)


# --- SqueezeNet 1.0 (Iandola et al., 2016) -----------------------------------

# (squeeze, expand) channels of fire2 … fire9; max pooling after fire4, fire8.
_FIRE = ((16, 64), (16, 64), (32, 128), (32, 128), (48, 192), (48, 192),
         (64, 256), (64, 256))
_POOL_AFTER_FIRE = (4, 8)


class Fire(nn.Module):
  squeeze: int
  expand: int
  layers: Layers

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = _conv_bn(self, self.squeeze, 1, name='squeeze')(x, train=train)
    return Concat(name='concat')(
        _conv_bn(self, self.expand, 1, name='expand1x1')(x, train=train),
        _conv_bn(self, self.expand, 3, name='expand3x3')(x, train=train))


class SqueezeNet(_Baseline):
  """The classifier is a 1×1 convolution to num_classes, then global pooling
  (SqueezeNet has no dense layer)."""

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = self.layers.network_input(x)
    if self.stem == 'imagenet':
      x = _max_pool(_conv_bn(self, 96, 7, 2, name='stem')(x, train=train),
                    name='stem_pool')
    else:  # 32×32: a 3×3 stride-1 stem, no pooling before the fire modules.
      x = _conv_bn(self, 96, 3, name='stem')(x, train=train)
    for i, (squeeze, expand) in enumerate(_FIRE):
      x = Fire(squeeze, expand, self.layers, name=f'fire{i + 2}')(
          x, train=train)
      if i + 2 in _POOL_AFTER_FIRE:
        x = _max_pool(x, name=f'pool{i + 2}')
    x = nn.Dropout(0.5, deterministic=True)(x)
    x = self.layers.conv(self.num_classes, (1, 1), use_bias=True,
                         name='classifier')(x)
    x = GlobalAvgPool(name='pool')(ReLU(name='relu')(x))
    return x.astype(jnp.float32)


# --- GoogLeNet / Inception v1 (Szegedy et al., 2015) -------------------------

# 1×1, (3×3 reduce, 3×3), (5×5 reduce, 5×5), pool projection.
_INCEPTION = {
    '3a': (64, 96, 128, 16, 32, 32), '3b': (128, 128, 192, 32, 96, 64),
    '4a': (192, 96, 208, 16, 48, 64), '4b': (160, 112, 224, 24, 64, 64),
    '4c': (128, 128, 256, 24, 64, 64), '4d': (112, 144, 288, 32, 64, 64),
    '4e': (256, 160, 320, 32, 128, 128), '5a': (256, 160, 320, 32, 128, 128),
    '5b': (384, 192, 384, 48, 128, 128),
}


class Inception(nn.Module):
  branches: tuple[int, int, int, int, int, int]
  layers: Layers

  @nn.compact
  def __call__(self, x, *, train: bool):
    c1, r3, c3, r5, c5, pool = self.branches
    conv = lambda features, kernel, name, x: _conv_bn(
        self, features, kernel, name=name)(x, train=train)
    b1 = conv(c1, 1, 'b1x1', x)
    b3 = conv(c3, 3, 'b3x3', conv(r3, 1, 'b3x3_reduce', x))
    b5 = conv(c5, 5, 'b5x5', conv(r5, 1, 'b5x5_reduce', x))
    bp = conv(pool, 1, 'pool_proj', _max_pool(x, 3, 1, name='pool'))
    return Concat(name='concat')(b1, b3, b5, bp)


class GoogLeNet(_Baseline):
  """Without the two auxiliary classifiers (used in training only)."""

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = self.layers.network_input(x)
    conv = lambda features, kernel, strides, name, x: _conv_bn(
        self, features, kernel, strides, name=name)(x, train=train)
    if self.stem == 'imagenet':  # 224 → 56 before the first inception.
      x = _max_pool(conv(64, 7, 2, 'stem_conv1', x), name='stem_pool1')
      x = conv(64, 1, 1, 'stem_conv2_reduce', x)
      x = _max_pool(conv(192, 3, 1, 'stem_conv2', x), name='stem_pool2')
    else:  # 32×32 kept: inception 3 at 32, 4 at 16, 5 at 8.
      x = conv(192, 3, 1, 'stem_conv2', x)
    for name, branches in _INCEPTION.items():
      if name in ('4a', '5a'):
        x = _max_pool(x, name=f'pool{name}')
      x = Inception(branches, self.layers, name=f'inception{name}')(
          x, train=train)
    x = nn.Dropout(0.4, deterministic=True)(x)
    return classifier_head(self.layers, x, self.num_classes)


# --- VGG16 (Simonyan & Zisserman, 2015) --------------------------------------

_VGG16 = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M',
          512, 512, 512, 'M')


class VGG16(_Baseline):
  """ImageNet: 7×7×512 → 4096 → 4096 → 1000 (138 M parameters, 124 M of them
  in the dense head). CIFAR: 1×1×512 → num_classes, as usual for 32×32."""

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = self.layers.network_input(x)
    conv_index = pool_index = 0
    for item in _VGG16:
      if item == 'M':
        pool_index += 1
        x = MaxPool(2, 2, 'VALID', name=f'pool{pool_index}')(x)
      else:
        conv_index += 1
        x = _conv_bn(self, item, 3, name=f'conv{conv_index}')(x, train=train)
    x = Flatten(name='flatten')(x)
    if self.stem == 'imagenet':
      for i in (1, 2):
        x = ReLU(name=f'relu{i}')(self.layers.dense(4096, name=f'fc{i}')(x))
    return self.layers.dense(self.num_classes, name='classifier')(x).astype(
        jnp.float32)


BASELINES = {
    'mobilenet_v1': MobileNetV1,
    'squeezenet': SqueezeNet,
    'googlenet': GoogLeNet,
    'vgg16': VGG16,
}
