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

# The checkout this flaxdil runs from: its configs/ beside the package.
_CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def load(spec: str,
         relative_to: str | None = None) -> ml_collections.ConfigDict:
  """The config of 'PATH[:ARG]': PATH's get_config(ARG).

  relative_to: a file whose directory a relative PATH is taken from (a
  config file passes its own __file__ to load a sibling); by default the
  current directory, as on the command line, and then the checkout that
  flaxdil runs from, so 'configs/tiny.py' loads from any directory (a
  notebook's).
  """
  path, _, arg = spec.partition(':')
  if relative_to and not os.path.isabs(path):
    path = os.path.join(os.path.dirname(os.path.abspath(relative_to)), path)
  elif not os.path.isabs(path) and not os.path.isfile(path):
    in_checkout = os.path.join(_CHECKOUT, path)
    if os.path.isfile(in_checkout):
      path = in_checkout
    else:
      raise ConfigError(
          f'config file {path!r} does not exist here ({os.getcwd()}) or in '
          f'the checkout flaxdil runs from ({_CHECKOUT}). Fix: pass an '
          'existing config file, e.g. configs/cifar10.py.')
  if not os.path.isfile(path):
    raise ConfigError(f'config file {path!r} does not exist. Fix: pass an '
                      'existing config file, e.g. configs/cifar10.py.')
  name = os.path.splitext(os.path.basename(path))[0]
  module_spec = importlib.util.spec_from_file_location(
      f'flaxdil_config_{name}', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def from_main_args(main_args: list[str]) -> ml_collections.ConfigDict:
  """The config that bin/main.py's arguments give: the file of the last
  --config=, then every --config.FIELD=VALUE, read by the field's type.
  For tools that start trainings with those arguments and need the same
  config themselves (bin/bench_input.py, bin/bench_loop.py)."""
  from flaxdil.config import args
  specs = [a.split('=', 1)[1] for a in main_args if a.startswith('--config=')]
  if not specs:
    raise ConfigError('give bin/main.py\'s arguments, at least --config=...')
  config = load(specs[-1])
  for arg in main_args:
    if arg.startswith('--config.'):
      field, _, text = arg[len('--config.'):].partition('=')
      config[field] = args.parse_value(config, field, text)
  return config
