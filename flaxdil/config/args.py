"""Changing configs: `get_config(arg)` strings ('dilation=0,num_epochs=10')
and copies with fields replaced.

The same parser reads a config file's argument (configs/cifar10.py:FIELD=
VALUE,...) and bin/sweep.py's --set, so a value means the same in both.
"""

from __future__ import annotations

import ast
import re

import ml_collections

from flaxdil.errors import ConfigError

# Fields are separated by a ',' that starts the next FIELD=: a comma inside
# a value (widths=(8,16,16), a TFDS split 'train[:50%]+test') stays in it.
_NEXT_FIELD = re.compile(r',(?=\s*[A-Za-z_][A-Za-z0-9_]*\s*=)')


_NOT_A_LITERAL = object()


def _literal(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return _NOT_A_LITERAL


def parse_value(config: ml_collections.ConfigDict, key: str, text: str):
  """The value `text` means for field `key`, read by the field's type.

  A field declared as a string (split names, paths, names) takes the text
  as it is, so TFDS slices (train[:10000]) and paths with ':' stay whole.
  Other fields take a Python literal, or a tuple written with ':' between
  its items (strides=1:2:1, dilation=0:1:0) because ',' separates fields;
  any other text stays a string (a bare word: model=vgg16), and the
  field's rule (flaxdil.config.rules) then says what it allows.
  """
  text = text.strip()
  if config.get_ref(key).get_type() is str:
    return text
  value = _literal(text)
  if value is not _NOT_A_LITERAL:
    return value
  items = [_literal(part.strip()) for part in text.split(':')]
  if len(items) > 1 and _NOT_A_LITERAL not in items:
    return tuple(items)
  return text


def apply_arguments(config: ml_collections.ConfigDict,
                    arg: str | None) -> ml_collections.ConfigDict:
  """Overrides config fields from 'FIELD=VALUE,FIELD=VALUE' (see
  `parse_value` for how values are read)."""
  if not arg:
    return config
  for item in _NEXT_FIELD.split(arg):
    key, sep, text = item.partition('=')
    key = key.strip()
    if not sep or not key:
      raise ConfigError(f'config argument {item!r} is not FIELD=VALUE; '
                        'write e.g. configs/cifar10.py:dilation=1')
    if key not in config:
      raise ConfigError(f'config argument names unknown field {key!r}; '
                        f'known fields: {", ".join(sorted(config.keys()))}')
    value = parse_value(config, key, text)
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
