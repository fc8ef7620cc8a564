"""absl's flags_parser for flaxdil's command lines: a bad flag or config
file becomes one line and exit code 2 instead of a traceback."""

from __future__ import annotations

import difflib
import os
import sys

from absl import flags

from flaxdil.config.defaults import FIELDS
from flaxdil.errors import EXIT_BAD_INPUT, FlaxdilError


def _unknown_field(argv, error: Exception) -> str:
  """The line for --config.FIELD=VALUE naming no field: the flag as the
  user wrote it and the nearest field (ml_collections' own message is a
  KeyError's repr of a repr)."""
  for arg in argv:
    if arg.startswith('--config.'):
      name = arg[len('--config.'):].split('=', 1)[0].split('.')[0]
      if name not in FIELDS:
        near = difflib.get_close_matches(name, FIELDS, n=1)
        return (f'unknown config field {name!r} ({arg}).'
                + (f' Did you mean {near[0]!r}?' if near else '')
                + ' Fix: use a field of flaxdil/config/defaults.py '
                '(--config.FIELD=VALUE).')
  first = str(error).splitlines()[0].strip('\\\'" ')
  return (f'unknown config field {first!r}. Fix: use a field of '
          'flaxdil/config/defaults.py (--config.FIELD=VALUE).')


def parse_flags(argv):
  """Parses argv into absl's FLAGS (app.run's flags_parser)."""
  config_args = [a.split('=', 1)[1] for a in argv if a.startswith('--config=')]
  config_arg = config_args[-1] if config_args else None
  try:
    remaining = flags.FLAGS(argv)
    if 'config' in flags.FLAGS and flags.FLAGS['config'].present:
      # config_flags defers a failure to load the file to the first access.
      flags.FLAGS.config.keys()
    return remaining
  except FlaxdilError as e:
    message = str(e)
  except (AttributeError, KeyError) as e:  # --config.FIELD for no such FIELD.
    message = _unknown_field(argv, e)
  except flags.Error as e:
    message = (f'{e}. Fix: config fields are those of flaxdil/config/defaults.py '
               '(--config.FIELD=VALUE); other flags: --helpfull.')
  except SyntaxError as e:
    message = (f'config file {config_arg!r} has a syntax error at line '
               f'{e.lineno}: {e.msg}. Fix the file.')
  except OSError as e:
    path = (config_arg or '').partition(':')[0]
    if not os.path.isfile(path):
      message = (f'config file {path!r} does not exist (looked in '
                 f'{os.getcwd()}). Fix: pass an existing config file, e.g. '
                 '--config=configs/cifar10.py.')
    else:  # Raised by the config file's own code; config_flags wraps it.
      detail = str(e).removeprefix('Configuration is not available because '
                                   'of an earlier failure to load: ')
      message = (f'config file {config_arg!r} failed while loading: {detail}. '
                 'Fix the file or its arguments.')
  except Exception as e:  # Raised by the config file's own code.
    message = (f'config file {config_arg!r} failed: {type(e).__name__}: {e}. '
               'Fix the file or its arguments.')
  print(f'error: {message}', file=sys.stderr, flush=True)
  sys.exit(EXIT_BAD_INPUT)
