"""Model registry: builds a Flax module from a config."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections

from flaxdil.errors import ConfigError
from flaxdil.models import baselines, dilated

# The config fields that fix a model's parameters: a checkpoint written with
# one value of these cannot be resumed or evaluated with another.
MODEL_FIELDS = ('model', 'widths', 'strides', 'dilation', 'stem', 'dtype')

MODELS = ('dilated_net',) + tuple(baselines.BASELINES)

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


def _dilations(dilation, num_blocks: int) -> tuple[int, ...]:
  """config.dilation → one δ per basic structure.

  An int is the paper's setting (the same δ in every module, Table 2); a
  tuple gives each module its own δ (our extension, e.g. configs/
  cifar10_mixed.py).
  """
  per_block = (tuple(dilation) if isinstance(dilation, (tuple, list))
               else (dilation,) * num_blocks)
  for d in per_block:
    if isinstance(d, bool) or not isinstance(d, int) or d < 0:
      raise ConfigError(
          f'config.dilation (the paper\'s δ) must be an integer >= 0 or one '
          f'such integer per basic structure, got {dilation!r}. Use e.g. '
          '--config.dilation=2 (0: 3x3, 1: 7x7, 2: 11x11).')
  if len(per_block) != num_blocks:
    raise ConfigError(
        f'config.dilation gives {len(per_block)} values for {num_blocks} '
        'basic structures (config.widths); give one δ per structure or a '
        'single integer.')
  return per_block


def create_model(config: ml_collections.ConfigDict, num_classes: int,
                 axis_name: str | None = None):
  """Returns the (unbound) Flax module the config describes."""
  if config.model not in MODELS:
    raise ConfigError(f'unknown model {config.model!r}; known: '
                      f'{", ".join(MODELS)}. Set --config.model to one of them.')
  dtypes = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
  if config.dtype not in dtypes:
    raise ConfigError(f'config.dtype must be one of {sorted(dtypes)}, '
                      f'got {config.dtype!r}.')
  dtype = dtypes[config.dtype]
  impl = conv_implementation(config.conv_impl)
  if config.model in baselines.BASELINES:
    if config.stem not in baselines.STEMS:
      raise ConfigError(f'config.stem must be one of {baselines.STEMS}, got '
                        f'{config.stem!r}.')
    return baselines.create(config.model, num_classes, config.stem, axis_name,
                            config.bn_momentum, impl, dtype)
  widths, strides = tuple(config.widths), tuple(config.strides)
  dilations = _dilations(config.dilation, len(widths))
  if len(widths) != len(strides):
    raise ConfigError(f'config.widths ({len(widths)} entries) and '
                      f'config.strides ({len(strides)}) must have one entry '
                      'per basic structure each.')
  if any(s not in (1, 2) for s in strides):
    raise ConfigError(f'config.strides must hold 1s and 2s, got {strides}.')
  return dilated.DilatedNet(
      num_classes=num_classes, widths=widths, strides=strides,
      dilations=dilations, bn_momentum=config.bn_momentum,
      axis_name=axis_name, impl=impl, dtype=dtype)
