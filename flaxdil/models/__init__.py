"""Model registry: builds a Flax module from a config."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from flaxdil.errors import ConfigError
from flaxdil.models import dilated

# The config fields that fix a model's parameters: a checkpoint written with
# one value of these cannot be resumed or evaluated with another.
MODEL_FIELDS = ('model', 'widths', 'strides', 'dilation', 'dtype')

CONV_IMPLS = ('auto', 'lax', 'fast')


def conv_implementation(name: str) -> dilated.Implementation:
  """config.conv_impl → the kernels that compute the joint modules.

  'auto' picks what measures fastest on the default backend (bin/bench.py):
  the sliced depthwise and matmul pointwise kernels on CPU, lax's
  convolutions on GPU and TPU, whose convolution libraries run grouped
  convolutions natively.
  """
  if name not in CONV_IMPLS:
    raise ConfigError(f'config.conv_impl must be one of {CONV_IMPLS}, got '
                      f'{name!r}.')
  if name == 'auto':
    name = 'fast' if jax.default_backend() == 'cpu' else 'lax'
  return dilated.FAST_CPU if name == 'fast' else dilated.LAX


def create_model(config: ml_collections.ConfigDict, num_classes: int,
                 axis_name: str | None = None):
  """Returns the (unbound) Flax module the config describes."""
  if config.model != 'dilated_net':
    raise ConfigError(f'unknown model {config.model!r}; known: dilated_net. '
                      'Set --config.model=dilated_net.')
  widths, strides = tuple(config.widths), tuple(config.strides)
  dilation = config.dilation
  if isinstance(dilation, bool) or not isinstance(dilation, int) or dilation < 0:
    raise ConfigError(
        f'config.dilation (the paper\'s δ) must be an integer >= 0, got '
        f'{dilation!r}. Use e.g. --config.dilation=2 (0: 3x3, 1: 7x7, 2: 11x11).')
  if len(widths) != len(strides):
    raise ConfigError(f'config.widths ({len(widths)} entries) and '
                      f'config.strides ({len(strides)}) must have one entry '
                      'per basic structure each.')
  if any(s not in (1, 2) for s in strides):
    raise ConfigError(f'config.strides must hold 1s and 2s, got {strides}.')
  dtypes = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
  if config.dtype not in dtypes:
    raise ConfigError(f'config.dtype must be one of {sorted(dtypes)}, '
                      f'got {config.dtype!r}.')
  return dilated.DilatedNet(
      num_classes=num_classes, widths=widths, strides=strides,
      dilations=(dilation,) * len(widths), bn_momentum=config.bn_momentum,
      axis_name=axis_name, impl=conv_implementation(config.conv_impl),
      dtype=dtypes[config.dtype])
