"""The config's checks: every field against its row of
flaxdil.config.defaults.FIELDS (the one home of each field's default,
meaning, allowed values and what a resume may do with it), the rules
between fields, and what the run's data and devices demand of them.

Checked once, before any work and before anything is written: by training,
evaluation, inspection, export and benchmarks (check_run, called first by
each; check_splits where data is read), and by a sweep for every run
before its first starts. One line per problem
(ConfigError or DataError, exit code 2) naming the field, the value and what
is allowed.
"""

from __future__ import annotations

import jax
import ml_collections

from flaxdil import models
from flaxdil.config.defaults import FIELDS
from flaxdil.data import source
from flaxdil.errors import ConfigError


def check_fields(config: ml_collections.ConfigDict) -> None:
  """Every field's value, then the rules between fields: pure, no data.

  Raises ConfigError for the first problem.
  """
  unknown = sorted(set(config.keys()) - set(FIELDS))
  if unknown:
    raise ConfigError(f'config has fields flaxdil does not know: '
                      f'{", ".join(unknown)}. Fix: remove them (every field '
                      'is listed in flaxdil/config/defaults.py).')
  for name, field in FIELDS.items():
    if name not in config:
      raise ConfigError(f'config has no field {name!r}. Fix: start the '
                        'config from flaxdil.config.defaults.get_config().')
    if not field.test(config[name]):
      raise ConfigError(f'config.{name}={config[name]!r} is not allowed: '
                        f'use {field.describe_allowed()}.')
  if config.num_train_steps == -1 and not config.num_epochs > 0:
    raise ConfigError(f'config.num_epochs={config.num_epochs!r} with '
                      'num_train_steps=-1 trains nothing: set num_epochs > 0 '
                      'or num_train_steps >= 1.')
  if config.freeze_backbone and not config.init_from:
    raise ConfigError(
        'config.freeze_backbone=True freezes the weights config.init_from '
        'loads, but init_from is empty: nothing would train but the '
        "classifier on random features. Fix: set --config.init_from (a "
        "workdir or a released weight), or freeze_backbone=False.")
  if config.alternating_flip and not config.random_flip:
    raise ConfigError(
        'config.alternating_flip=True chooses which epochs flip each image, '
        'but config.random_flip=False flips none. Fix: set random_flip=True, '
        'or alternating_flip=False.')
  if bool(config.early_size) != bool(config.early_epochs):
    raise ConfigError(
        f'config.early_size={config.early_size} and '
        f'early_epochs={config.early_epochs}: set both (a size and '
        'for how many epochs) or neither.')
  if config.early_mode != 'crop' and not config.early_size:
    raise ConfigError(
        f'config.early_mode={config.early_mode!r} with early_size=0 resizes '
        'nothing. Fix: set early_size and early_epochs too, or leave '
        'early_mode at its default.')
  if config.early_size and config.image_size is not None:
    raise ConfigError(
        f'config.early_size={config.early_size} with image_size='
        f'{config.image_size}: the network would resize each image to '
        f'{config.image_size} again, and save nothing. Fix: set one of them.')
  sgd_fields = [f'{name}={config[name]!r}' for name in ('sgd_momentum',
                                                         'nesterov')
                if config[name] != FIELDS[name].default]
  if config.optimizer != 'sgd' and sgd_fields:
    raise ConfigError(
        f'config.{", ".join(sgd_fields)} set for optimizer='
        f'{config.optimizer!r}, which has no such setting. Fix: set '
        "optimizer='sgd', or leave them at their defaults.")
  if (config.optimizer != 'adam'
      and config.adam_b2 != FIELDS['adam_b2'].default):
    raise ConfigError(
        f'config.adam_b2={config.adam_b2!r} set for optimizer='
        f'{config.optimizer!r}, which has no such setting. Fix: set '
        "optimizer='adam', or leave it at its default.")
  if (not config.lookahead_steps
      and config.lookahead_alpha != FIELDS['lookahead_alpha'].default):
    raise ConfigError(
        f'config.lookahead_alpha={config.lookahead_alpha} with '
        'lookahead_steps=0 (Lookahead off) changes nothing. Fix: set '
        'lookahead_steps > 0 too, or leave lookahead_alpha at its default.')
  if config.stream_prefetch < config.stream_threads:
    raise ConfigError(
        f'config.stream_prefetch={config.stream_prefetch} is smaller than '
        f'config.stream_threads={config.stream_threads}: only that many '
        'threads could read at once. Fix: read at least as many steps ahead '
        'as there are threads.')
  blocks = len(config.widths)
  if len(config.strides) != blocks:
    raise ConfigError(f'config.widths ({blocks} entries) and config.strides '
                      f'({len(config.strides)}) must have one entry per '
                      'basic structure each.')
  if (isinstance(config.dilation, (tuple, list))
      and len(config.dilation) != blocks):
    raise ConfigError(
        f'config.dilation gives {len(config.dilation)} values for {blocks} '
        'basic structures (config.widths); give one δ per structure or a '
        'single integer.')


def check_devices(config: ml_collections.ConfigDict, num_devices: int,
                  platform: str = '') -> None:
  """Global batches are divided evenly over the devices of all processes."""
  for field in ('batch_size', 'eval_batch_size'):
    if config[field] % num_devices:
      raise ConfigError(
          f'config.{field}={config[field]} is not divisible by the '
          f'{num_devices} devices{f" ({platform})" if platform else ""}; use '
          f'a multiple of {num_devices}, e.g. --config.{field}='
          f'{max(1, config[field] // num_devices) * num_devices}.')


def check_model(config: ml_collections.ConfigDict,
                info: source.DatasetInfo) -> None:
  """The model can take the dataset's images: traced with abstract shapes
  (nothing computed), so an impossible shape is a config error here rather
  than a traceback from inside JAX later."""
  side = min(info.image_shape[:2])
  if config.test_time_shift >= side:
    raise ConfigError(
        f'config.test_time_shift={config.test_time_shift} translates '
        f'{config.dataset!r} images ({side} pixels on their shorter side) '
        'by more than their size (edges are reflected). Fix: a shift of 1 '
        'or 2 pixels, as airbench uses.')
  trained_side = config.early_size or side
  if config.cutout >= trained_side:
    raise ConfigError(
        f'config.cutout={config.cutout} is not smaller than the '
        f'{trained_side}-pixel images it would cut'
        f'{" (config.early_size)" if config.early_size else ""}: it would '
        f'blank them whole. Fix: a square such as '
        f'{max(1, trained_side * 3 // 8)} '
        'pixels (airbench96 cuts 12 of 32).')
  if config.early_size >= side:
    raise ConfigError(
        f'config.early_size={config.early_size} is not smaller '
        f'than {config.dataset!r} images ({side} pixels on their shorter '
        f'side): it would save nothing. Fix: a size such as {side * 3 // 4}.')
  model = models.create_model(config, info.num_classes,
                              input_size=info.image_shape[0])
  shapes = [tuple(info.image_shape)]
  if config.early_size:
    shapes.append((config.early_size,) * 2 + tuple(info.image_shape[2:]))
  for shape in shapes:
    try:
      logits = jax.eval_shape(
          lambda images: model.init_with_output(
              jax.random.key(0), images, train=False)[0],
          jax.ShapeDtypeStruct((1,) + shape, 'float32'))
      shape_ok = tuple(logits.shape) == (1, info.num_classes)
    except Exception as e:  # Shapes that cannot be convolved, pooled, ...
      shape_ok = False
      reason = f'{type(e).__name__}: {str(e).splitlines()[0][:200]}'
    else:
      reason = f'its logits have shape {tuple(logits.shape)}'
    if not shape_ok:
      what = ('widths, strides, dilation' if config.model == 'dilated_net'
              else f'model={config.model!r}, stem={config.stem!r}')
      what += ', early_size' if shape != shapes[0] else ''
      raise ConfigError(
          f'config ({what}) describes a model that cannot classify '
          f'{config.dataset!r} images of shape {shape} '
          f'({reason}). Fix those fields.')


def training_splits(config: ml_collections.ConfigDict) -> dict[str, str]:
  """The splits a training run reads, named as check_splits takes them."""
  return {'config.train_split': config.train_split,
          'config.test_split': config.test_split}


def check_run(config: ml_collections.ConfigDict,
              devices=None) -> source.DatasetInfo:
  """What a run can be refused for from the config, its devices and the
  dataset's metadata: the fields, the batch sizes on these devices, and the
  model on the dataset's images. Returns the dataset's metadata."""
  check_fields(config)
  devices = list(devices or jax.devices())
  check_devices(config, len(devices), devices[0].platform)
  info = source.dataset_info(config)
  if info.varying_size and config.input_pipeline == 'device':
    raise ConfigError(
        f'dataset {config.dataset!r} has images of varying size, which the '
        'device pipeline cannot hold as one array. Fix: set '
        '--config.input_pipeline=stream (or auto).')
  check_model(config, info)
  return info


def check_splits(config: ml_collections.ConfigDict,
                 splits: dict[str, str]) -> dict[str, int]:
  """The splits a run will read, {where they were asked for: split}
  (training_splits(config) for training), exist and select examples; with
  the training split, the hold-out and the batch fit it. Reads the prepared
  data's metadata (preparing it first where that can work); returns the
  splits' sizes, by the same names."""
  sizes = source.split_sizes(config, splits)
  if 'config.train_split' in sizes:
    check_training_size(config, sizes['config.train_split'])
  return sizes


def check_training_size(config: ml_collections.ConfigDict,
                        num_examples: int) -> None:
  """The hold-out leaves training examples, at least one batch of them."""
  if config.validation_size >= num_examples:
    raise ConfigError(
        f'config.validation_size={config.validation_size} must be smaller '
        f'than the training split ({num_examples} examples in '
        f'{config.train_split!r}).')
  if config.batch_size > num_examples - config.validation_size:
    raise ConfigError(
        f'config.batch_size={config.batch_size} is larger than the '
        f'{num_examples - config.validation_size} training examples left '
        f'after the hold-out of {config.validation_size}; lower it.')
