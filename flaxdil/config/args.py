"""Changing configs: `get_config(arg)` strings ('dilation=0,num_epochs=10') and
copies with fields replaced."""

from __future__ import annotations

import ast

import ml_collections

from flaxdil.errors import ConfigError


def _parse_value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text  # A bare word is a string: dataset=cifar100.


def apply_arguments(config: ml_collections.ConfigDict,
                    arg: str | None) -> ml_collections.ConfigDict:
  """Overrides config fields from 'FIELD=VALUE,FIELD=VALUE'.

  Values are Python literals; tuples are written with ':' between items
  (strides=1:2:1) because ',' separates fields.
  """
  if not arg:
    return config
  for item in arg.split(','):
    key, sep, text = item.partition('=')
    key = key.strip()
    if not sep or not key:
      raise ConfigError(f'config argument {item!r} is not FIELD=VALUE; '
                        'write e.g. configs/cifar10.py:dilation=1')
    if key not in config:
      raise ConfigError(f'config argument names unknown field {key!r}; '
                        f'known fields: {", ".join(sorted(config.keys()))}')
    if ':' in text:
      value = tuple(_parse_value(part) for part in text.split(':'))
    else:
      value = _parse_value(text.strip())
    with config.ignore_type():
      config[key] = value
  return config


def with_fields(config: ml_collections.ConfigDict,
                **fields) -> ml_collections.ConfigDict:
  """A copy of config (locked or not) with `fields` replaced."""
  config = config.copy_and_resolve_references()
  with config.unlocked():
    for key, value in fields.items():
      config[key] = value
  return config
