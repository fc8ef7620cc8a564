"""The models room: the paper's network, Table 1's baselines and the layers
and kernels they are built from.

  dilation.py    the paper's δ: span, lax rate, padding, receptive field
  depthwise.py   the dilated depthwise kernels: lax reference, exact fast path
  layers.py      the convolutions, BatchNorm and head, bound once per model
  dilated.py     the paper's network
  baselines.py   MobileNet v1, SqueezeNet, GoogLeNet, VGG16

This module is the registry: the model names, the other vocabularies of
the model's config fields, and `create_model`, which reads those fields
once. It trusts its config: every field is checked before anything is
built (flaxdil.config.rules, which reads the vocabularies from here).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from flaxdil.models import baselines, dilation, layers
from flaxdil.models.dilated import DilatedBackbone, DilatedNet

MODELS = ('dilated_net',) + tuple(baselines.BASELINES)
STEMS = baselines.STEMS
CONV_IMPLS = ('auto',) + layers.CONV_IMPLS
DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


def conv_impl(name: str, dilated: bool = False,
              backend: str | None = None) -> str:
  """config.conv_impl → 'lax' or 'fast', the kernels of the convolutions.

  'auto' picks what measures fastest on `backend` (default: JAX's default
  backend), with bin/bench.py: 'fast' (sliced depthwise, matmul pointwise)
  on CPU; on GPU and TPU 'lax', whose convolution libraries run grouped
  convolutions natively, except for dilated depthwise filters (dilated:
  some δ > 0), where XLA's GPU convolution is 16x slower than 'fast' in
  training (paper's network, δ = 2, one H200: 2,943 vs 48,687 images/s;
  results/gpu_h200/).
  """
  if name == 'auto':
    backend = backend or jax.default_backend()
    return 'fast' if backend == 'cpu' or (backend == 'gpu' and dilated) else 'lax'
  return name


def is_dilated(config: ml_collections.ConfigDict) -> bool:
  return (config.model == 'dilated_net' and
          any(dilation.per_block(config.dilation, len(config.widths))))


def config_conv_impl(config: ml_collections.ConfigDict) -> str:
  """The kernels config's model is built with ('auto' resolved)."""
  return conv_impl(config.conv_impl, is_dilated(config))


def create_model(config: ml_collections.ConfigDict, num_classes: int,
                 axis_name: str | None = None, input_size: int | None = None):
  """Returns the (unbound) Flax module that a checked config describes.

  axis_name: the pmap axis over which BatchNorm averages batch statistics.
  input_size: the size of the images it is given, where known; the network
  resizes them first where config.image_size asks for another (images of
  varying size come cropped to it by the host: flaxdil.data.images).
  """
  resize_to = (config.image_size if config.image_size != input_size
               else None)
  bound = layers.bind(config_conv_impl(config), DTYPES[config.dtype],
                      config.bn_momentum, axis_name, resize_to)
  if config.model in baselines.BASELINES:
    return baselines.BASELINES[config.model](
        num_classes=num_classes, layers=bound, stem=config.stem)
  widths = tuple(config.widths)
  return DilatedNet(num_classes=num_classes, widths=widths,
                    strides=tuple(config.strides),
                    dilations=dilation.per_block(config.dilation, len(widths)),
                    layers=bound)


def create_backbone(config: ml_collections.ConfigDict,
                    input_size: int | None = None) -> DilatedBackbone:
  """The paper's network without its head (DilatedBackbone), for another
  Flax module to call; its BatchNorm averages over no pmap axis."""
  if config.model != 'dilated_net':
    from flaxdil.errors import ConfigError
    raise ConfigError(f'a backbone is built for dilated_net, not '
                      f'{config.model!r}.')
  model = create_model(config, 1, input_size=input_size)
  return DilatedBackbone(widths=model.widths, strides=model.strides,
                         dilations=model.dilations, layers=model.layers)
