"""Model registry: reads the model's config fields once and builds the module."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from flaxdil import dilation
from flaxdil.errors import ConfigError
from flaxdil.models import baselines, layers
from flaxdil.models.dilated import DilatedNet

# The config fields that fix a model's parameters: a checkpoint written with
# one value of these cannot be resumed or evaluated with another.
MODEL_FIELDS = ('model', 'widths', 'strides', 'dilation', 'stem', 'dtype')

MODELS = ('dilated_net',) + tuple(baselines.BASELINES)

CONV_IMPLS = ('auto',) + layers.CONV_IMPLS

_DTYPES = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}


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
  if name not in CONV_IMPLS:
    raise ConfigError(f'config.conv_impl must be one of {CONV_IMPLS}, got '
                      f'{name!r}.')
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
                 axis_name: str | None = None):
  """Returns the (unbound) Flax module the config describes.

  axis_name: the pmap axis over which BatchNorm averages batch statistics.
  """
  if config.model not in MODELS:
    raise ConfigError(f'unknown model {config.model!r}; known: '
                      f'{", ".join(MODELS)}. Set --config.model to one of them.')
  if config.dtype not in _DTYPES:
    raise ConfigError(f'config.dtype must be one of {sorted(_DTYPES)}, '
                      f'got {config.dtype!r}.')
  bound = layers.bind(config_conv_impl(config), _DTYPES[config.dtype],
                      config.bn_momentum, axis_name)
  if config.model in baselines.BASELINES:
    if config.stem not in baselines.STEMS:
      raise ConfigError(f'config.stem must be one of {baselines.STEMS}, got '
                        f'{config.stem!r}.')
    return baselines.BASELINES[config.model](
        num_classes=num_classes, layers=bound, stem=config.stem)
  widths, strides = tuple(config.widths), tuple(config.strides)
  dilations = dilation.per_block(config.dilation, len(widths))
  if len(widths) != len(strides):
    raise ConfigError(f'config.widths ({len(widths)} entries) and '
                      f'config.strides ({len(strides)}) must have one entry '
                      'per basic structure each.')
  if any(s not in (1, 2) for s in strides):
    raise ConfigError(f'config.strides must hold 1s and 2s, got {strides}.')
  return DilatedNet(num_classes=num_classes, widths=widths, strides=strides,
                    dilations=dilations, layers=bound)
