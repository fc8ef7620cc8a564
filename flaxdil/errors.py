"""Errors that reach the user as one clear message and a non-zero exit."""

import contextlib
import sys


class FlaxdilError(Exception):
  """A problem with the user's input: config, data or workdir.

  The message names the problem and the fix; bin/main.py prints it without a
  traceback.
  """


class ConfigError(FlaxdilError):
  """The config asks for something impossible or unknown."""


class DataError(FlaxdilError):
  """The dataset cannot be found or read."""


class WorkdirError(FlaxdilError):
  """The workdir holds something that conflicts with the request."""


@contextlib.contextmanager
def exit_on_user_error():
  """For command-line entry points: a FlaxdilError becomes one line on
  stderr and exit code 2, with no traceback."""
  try:
    yield
  except FlaxdilError as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
