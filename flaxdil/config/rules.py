"""Every config field checked for type and range before anything runs.

One line per problem, naming the field, the value and what is allowed
(ConfigError, exit code 2). The model's own fields (model, widths, strides,
dilation, stem, dtype, conv_impl) are checked where the model is built
(flaxdil.models.create_model); dataset names and directories where the data
is read (flaxdil.data).
"""

from __future__ import annotations

import math
import numbers

import ml_collections

from flaxdil.errors import ConfigError


def _is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value) -> bool:
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value))


# field: (test, what is allowed)
_RULES = {
    'validation_size': (lambda v: _is_int(v) and v >= 0, 'an integer >= 0'),
    'crop_padding': (lambda v: _is_int(v) and v >= 0, 'an integer >= 0 (0: off)'),
    'random_flip': (lambda v: isinstance(v, bool), 'True or False'),
    'bn_momentum': (lambda v: _is_number(v) and 0 <= v < 1, 'a number in [0, 1)'),
    'batch_size': (lambda v: _is_int(v) and v >= 1, 'an integer >= 1'),
    'eval_batch_size': (lambda v: _is_int(v) and v >= 1, 'an integer >= 1'),
    'num_epochs': (lambda v: _is_number(v), 'a number (> 0 unless num_train_steps is set)'),
    'num_train_steps': (lambda v: _is_int(v) and (v == -1 or v >= 1),
                        '-1 (from num_epochs) or an integer >= 1'),
    'learning_rate': (lambda v: _is_number(v) and v > 0, 'a number > 0'),
    'warmup_epochs': (lambda v: _is_number(v) and v >= 0, 'a number >= 0'),
    'lr_schedule': (lambda v: v in ('cosine', 'constant'), "'cosine' or 'constant'"),
    'weight_decay': (lambda v: _is_number(v) and v >= 0, 'a number >= 0'),
    'label_smoothing': (lambda v: _is_number(v) and 0 <= v < 1, 'a number in [0, 1)'),
    'ema_decay': (lambda v: _is_number(v) and 0 <= v < 1, 'a number in [0, 1) (0: off)'),
    'seed': (_is_int, 'an integer'),
    'test_time_flip': (lambda v: isinstance(v, bool), 'True or False'),
    'log_every_steps': (lambda v: _is_int(v) and v >= 1, 'an integer >= 1'),
    'eval_every_steps': (lambda v: _is_int(v) and (v == -1 or v >= 1),
                         '-1 (once per epoch) or an integer >= 1'),
    'checkpoint_every_steps': (lambda v: _is_int(v) and (v == -1 or v >= 1),
                               '-1 (at every evaluation) or an integer >= 1'),
    'checkpoint_every_minutes': (lambda v: _is_number(v) and v >= 0,
                                 'a number of minutes >= 0 (0: off)'),
    'keep_checkpoints': (lambda v: _is_int(v) and v >= 1, 'an integer >= 1'),
    'skip_nonfinite_steps': (lambda v: isinstance(v, bool), 'True or False'),
    'train_split': (lambda v: isinstance(v, str) and v, 'a split name'),
    'test_split': (lambda v: isinstance(v, str) and v, 'a split name'),
    'dataset': (lambda v: isinstance(v, str) and v, 'a TFDS dataset name'),
}


def validate(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for the first field outside its range."""
  for field, (test, allowed) in _RULES.items():
    if field in config and not test(config[field]):
      raise ConfigError(f'config.{field}={config[field]!r} is not allowed: '
                        f'use {allowed}.')
  if config.num_train_steps == -1 and not config.num_epochs > 0:
    raise ConfigError(f'config.num_epochs={config.num_epochs!r} with '
                      'num_train_steps=-1 trains nothing: set num_epochs > 0 '
                      'or num_train_steps >= 1.')
