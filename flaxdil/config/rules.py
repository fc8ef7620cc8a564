"""The one home of the config's rules: every field's allowed values, the
rules between fields, what the run's data and devices demand of them, and
what a resumed run may change.

Checked once, before any work and before anything is written: by training,
evaluation, inspection, export and benchmarks (check_run, through
`flaxdil.training.devices.PmappedModel`; check_splits where data is read),
and by a sweep for every run before its first starts. One line per problem
(ConfigError or DataError, exit code 2) naming the field, the value and what
is allowed.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from typing import Any, Callable

import jax
import ml_collections

from flaxdil import models
from flaxdil.data import source
from flaxdil.errors import ConfigError

# What a resumed training run may do with a field (flaxdil.workdir.record):
#   IDENTITY  what the parameters mean: refused on resume and when a
#             workdir is evaluated, inspected or exported
#   FIXED     how the run trains (data order, augmentation, optimizer,
#             schedule, selection): refused on resume, free for evaluation
#   FREE      where data lives, kernels, length, logging and checkpoint
#             cadence: may change, and the change is recorded per session
IDENTITY, FIXED, FREE = 'identity', 'fixed', 'free'

# config.input_pipeline: how training data reaches the devices
# (flaxdil.training.inputs); both compute the same batches.
INPUT_PIPELINES = ('auto', 'device', 'stream')


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value))


def _is_name(value) -> bool:
  return isinstance(value, str) and bool(value.strip())


def _is_optional_path(value) -> bool:
  return value is None or _is_name(value)


def _is_bool(value) -> bool:
  return isinstance(value, bool)


def _ints(value, test) -> bool:
  return (isinstance(value, (tuple, list)) and len(value) > 0
          and all(_is_int(v) and test(v) for v in value))


def _is_dilation(value) -> bool:
  if isinstance(value, (tuple, list)):
    return _ints(value, lambda v: v >= 0)
  return _is_int(value) and value >= 0


@dataclasses.dataclass(frozen=True)
class Rule:
  test: Callable[[Any], bool]
  allowed: str       # What the error message says is allowed.
  on_resume: str     # IDENTITY, FIXED or FREE.


FIELDS = {
    # Data.
    'dataset': Rule(_is_name, 'a TFDS dataset name', IDENTITY),
    'data_dir': Rule(_is_optional_path, 'a directory, or None', FREE),
    'manual_dir': Rule(_is_optional_path, 'a directory, or None', FREE),
    'train_split': Rule(_is_name, 'a split name or TFDS slice', FIXED),
    'test_split': Rule(_is_name, 'a split name or TFDS slice', FREE),
    'validation_size': Rule(lambda v: _is_int(v) and v >= 0,
                            'an integer >= 0', FIXED),
    'crop_padding': Rule(lambda v: _is_int(v) and v >= 0,
                         'an integer >= 0 (0: off)', FIXED),
    'random_flip': Rule(_is_bool, 'True or False', FIXED),
    'image_size': Rule(lambda v: v is None or (_is_int(v) and v >= 1),
                       'None (the dataset\'s own size) or an integer >= 1',
                       IDENTITY),
    'input_pipeline': Rule(lambda v: v in INPUT_PIPELINES,
                           f'one of {", ".join(INPUT_PIPELINES)}', FREE),
    'stream_threads': Rule(lambda v: _is_int(v) and v >= 1,
                           'an integer >= 1', FREE),
    'stream_prefetch': Rule(lambda v: _is_int(v) and v >= 1,
                            'an integer >= 1 (steps read ahead)', FREE),
    # Model.
    'model': Rule(lambda v: v in models.MODELS,
                  f'one of {", ".join(models.MODELS)}', IDENTITY),
    'stem': Rule(lambda v: v in models.STEMS,
                 f'one of {", ".join(models.STEMS)}', IDENTITY),
    'widths': Rule(lambda v: _ints(v, lambda w: w >= 1),
                   'one integer >= 1 per basic structure, e.g. 32:64:128',
                   IDENTITY),
    'strides': Rule(lambda v: _ints(v, lambda s: s in (1, 2)),
                    'one stride per basic structure, each 1 or 2, e.g. 1:2:1',
                    IDENTITY),
    'dilation': Rule(_is_dilation,
                     'the paper\'s δ, an integer >= 0 (0: 3x3, 1: 7x7, 2: '
                     '11x11), or one such integer per basic structure',
                     IDENTITY),
    'dtype': Rule(lambda v: v in models.DTYPES,
                  f'one of {", ".join(models.DTYPES)}', IDENTITY),
    'bn_momentum': Rule(lambda v: _is_number(v) and 0 <= v < 1,
                        'a number in [0, 1)', FIXED),
    'conv_impl': Rule(lambda v: v in models.CONV_IMPLS,
                      f'one of {", ".join(models.CONV_IMPLS)}', FREE),
    # Optimisation.
    'batch_size': Rule(lambda v: _is_int(v) and v >= 1, 'an integer >= 1',
                       FIXED),
    'eval_batch_size': Rule(lambda v: _is_int(v) and v >= 1,
                            'an integer >= 1', FREE),
    'num_epochs': Rule(_is_number,
                       'a number (> 0 unless num_train_steps is set)', FREE),
    'num_train_steps': Rule(lambda v: _is_int(v) and (v == -1 or v >= 1),
                            '-1 (from num_epochs) or an integer >= 1', FREE),
    'learning_rate': Rule(lambda v: _is_number(v) and v > 0, 'a number > 0',
                          FIXED),
    'warmup_epochs': Rule(lambda v: _is_number(v) and v >= 0,
                          'a number >= 0', FIXED),
    'lr_schedule': Rule(lambda v: v in ('cosine', 'constant'),
                        "'cosine' or 'constant'", FIXED),
    'weight_decay': Rule(lambda v: _is_number(v) and v >= 0, 'a number >= 0',
                         FIXED),
    'label_smoothing': Rule(lambda v: _is_number(v) and 0 <= v < 1,
                            'a number in [0, 1)', FIXED),
    'ema_decay': Rule(lambda v: _is_number(v) and 0 <= v < 1,
                      'a number in [0, 1) (0: off)', FIXED),
    'seed': Rule(_is_int, 'an integer', FIXED),
    'test_time_flip': Rule(_is_bool, 'True or False', FIXED),
    # Bookkeeping.
    'log_every_steps': Rule(lambda v: _is_int(v) and v >= 1,
                            'an integer >= 1', FREE),
    'eval_every_steps': Rule(lambda v: _is_int(v) and (v == -1 or v >= 1),
                             '-1 (once per epoch) or an integer >= 1', FREE),
    'checkpoint_every_steps': Rule(
        lambda v: _is_int(v) and (v == -1 or v >= 1),
        '-1 (at every evaluation) or an integer >= 1', FREE),
    'checkpoint_every_minutes': Rule(lambda v: _is_number(v) and v >= 0,
                                     'a number of minutes >= 0 (0: off)', FREE),
    'keep_checkpoints': Rule(lambda v: _is_int(v) and v >= 1,
                             'an integer >= 1', FREE),
    'skip_nonfinite_steps': Rule(_is_bool, 'True or False', FREE),
    'steps_per_dispatch': Rule(lambda v: _is_int(v) and v >= 1,
                               'an integer >= 1', FREE),
    'profile_steps': Rule(lambda v: v == '' or profile_window(v) is not None,
                          "'' (off) or 'A:B' with integers 0 <= A < B "
                          "(traces the steps after A up to B)", FREE),
}


def profile_window(text: str) -> tuple[int, int] | None:
  """config.profile_steps 'A:B' → (A, B); None for '' or anything else."""
  first, sep, last = str(text).partition(':')
  try:
    window = (int(first), int(last))
  except ValueError:
    return None
  return window if sep and 0 <= window[0] < window[1] else None


def fields_with(on_resume: str) -> tuple[str, ...]:
  return tuple(f for f, rule in FIELDS.items() if rule.on_resume == on_resume)


def check_fields(config: ml_collections.ConfigDict) -> None:
  """Every field's value, then the rules between fields: pure, no data.

  Raises ConfigError for the first problem.
  """
  unknown = sorted(set(config.keys()) - set(FIELDS))
  if unknown:
    raise ConfigError(f'config has fields flaxdil does not know: '
                      f'{", ".join(unknown)}. Fix: remove them (every field '
                      'is listed in flaxdil/config/defaults.py).')
  for field, rule in FIELDS.items():
    if field not in config:
      raise ConfigError(f'config has no field {field!r}. Fix: start the '
                        'config from flaxdil.config.defaults.get_config().')
    if not rule.test(config[field]):
      raise ConfigError(f'config.{field}={config[field]!r} is not allowed: '
                        f'use {rule.allowed}.')
  if config.num_train_steps == -1 and not config.num_epochs > 0:
    raise ConfigError(f'config.num_epochs={config.num_epochs!r} with '
                      'num_train_steps=-1 trains nothing: set num_epochs > 0 '
                      'or num_train_steps >= 1.')
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
  model = models.create_model(config, info.num_classes,
                              input_size=info.image_shape[0])
  try:
    logits = jax.eval_shape(
        lambda images: model.init_with_output(
            jax.random.key(0), images, train=False)[0],
        jax.ShapeDtypeStruct((1,) + tuple(info.image_shape), 'float32'))
    shape_ok = tuple(logits.shape) == (1, info.num_classes)
  except Exception as e:  # Shapes that cannot be convolved, pooled, ...
    shape_ok = False
    reason = f'{type(e).__name__}: {str(e).splitlines()[0][:200]}'
  else:
    reason = f'its logits have shape {tuple(logits.shape)}'
  if not shape_ok:
    what = ('widths, strides, dilation' if config.model == 'dilated_net'
            else f'model={config.model!r}, stem={config.stem!r}')
    raise ConfigError(
        f'config ({what}) describes a model that cannot classify '
        f'{config.dataset!r} images of shape {tuple(info.image_shape)} '
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
