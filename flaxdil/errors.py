"""Errors that reach the user as one clear line and a documented exit code.

Exit codes of bin/main.py:
  0   done
  2   bad input: config, data or workdir (FlaxdilError); nothing was written
      or the workdir was left as it was
  3   training diverged (non-finite loss or gradients); nothing non-finite
      was saved
  4   another process of a multi-process run was lost (killed, its host
      gone): restart every process with the same command to resume from the
      last checkpoint
  75  stopped by SIGTERM or SIGINT after saving a checkpoint of the current
      step (EX_TEMPFAIL: run the same command again to resume)
"""

import contextlib
import os
import sys

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_PROCESS_LOST = 4
EXIT_PREEMPTED = 75


class FlaxdilError(Exception):
  """A problem with the user's input: config, data or workdir.

  The message names the problem and the fix; bin/main.py prints it without a
  traceback.
  """
  exit_code = EXIT_BAD_INPUT


class ConfigError(FlaxdilError):
  """The config asks for something impossible or unknown."""


class DataError(FlaxdilError):
  """The dataset cannot be found or read."""


class WorkdirError(FlaxdilError):
  """The workdir holds something that conflicts with the request."""


class TrainingDiverged(FlaxdilError):
  """A step produced a non-finite loss or gradient."""
  exit_code = EXIT_DIVERGED


class Preempted(FlaxdilError):
  """A signal asked training to stop; a checkpoint of the step was saved."""
  exit_code = EXIT_PREEMPTED


class ProcessLost(FlaxdilError):
  """A collective failed because another process of the run is gone."""
  exit_code = EXIT_PROCESS_LOST


@contextlib.contextmanager
def exit_on_user_error():
  """For command-line entry points: a FlaxdilError becomes one line on
  stderr and its exit code, with no traceback."""
  try:
    yield
  except FlaxdilError as e:
    print(f'{"stopped" if isinstance(e, Preempted) else "error"}: {e}',
          file=sys.stderr, flush=True)
    if isinstance(e, ProcessLost):
      # Not sys.exit: JAX's exit handler would wait for the lost process at
      # its shutdown barrier, then abort. Checkpoints are whole (atomic) and
      # the workdir lock dies with the process.
      sys.stdout.flush()
      os._exit(e.exit_code)
    sys.exit(e.exit_code)
