"""absl's flags_parser for flaxdil's command lines: a bad flag or config
file becomes one line and exit code 2 instead of a traceback."""

from __future__ import annotations

import sys

from absl import flags

from flaxdil.errors import EXIT_BAD_INPUT, FlaxdilError


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
    message = (f'unknown config field {str(e).strip(chr(34) + chr(39))!r}. '
               'Fix: use a field of flaxdil/config/defaults.py '
               '(--config.FIELD=VALUE).')
  except flags.Error as e:
    message = (f'{e}. Fix: config fields are those of flaxdil/config/defaults.py '
               '(--config.FIELD=VALUE); other flags: --helpfull.')
  except SyntaxError as e:
    message = (f'config file {config_arg!r} has a syntax error at line '
               f'{e.lineno}: {e.msg}. Fix the file.')
  except OSError:
    message = (f'cannot load config file {config_arg!r} (missing, or it '
               'failed while loading). Fix: pass an existing config file, '
               'e.g. --config=configs/cifar10.py.')
  except Exception as e:  # Raised by the config file's own code.
    message = (f'config file {config_arg!r} failed: {type(e).__name__}: {e}. '
               'Fix the file or its arguments.')
  print(f'error: {message}', file=sys.stderr, flush=True)
  sys.exit(EXIT_BAD_INPUT)
