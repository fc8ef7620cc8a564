"""Config files loaded by path, as `--config=` loads them (ml_collections'
config_flags): 'configs/cifar10.py' or 'configs/cifar10.py:FIELD=VALUE,...'.

For code that is not a command line: sweeps, tests, notebooks, and config
files that build on another one (configs/cifar10_recipe_mixed.py).
"""

from __future__ import annotations

import importlib.util
import os

import ml_collections

from flaxdil.errors import ConfigError


def load(spec: str,
         relative_to: str | None = None) -> ml_collections.ConfigDict:
  """The config of 'PATH[:ARG]': PATH's get_config(ARG).

  relative_to: a file whose directory a relative PATH is taken from (a
  config file passes its own __file__ to load a sibling); by default the
  current directory, as on the command line.
  """
  path, _, arg = spec.partition(':')
  if relative_to and not os.path.isabs(path):
    path = os.path.join(os.path.dirname(os.path.abspath(relative_to)), path)
  if not os.path.isfile(path):
    raise ConfigError(f'config file {path!r} does not exist. Fix: pass an '
                      'existing config file, e.g. configs/cifar10.py.')
  name = os.path.splitext(os.path.basename(path))[0]
  module_spec = importlib.util.spec_from_file_location(
      f'flaxdil_config_{name}', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()
