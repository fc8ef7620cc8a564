"""The cores a process may run on, as a parent that runs several at once
gives them (`bin/sweep.py --parallel`, `bin/speedrun.py --parallel`): one
environment variable that each child applies to itself as it starts (base:
the command line and the experiments both use it).

The child pins itself, before JAX starts, for two reasons:
- XLA:CPU sizes its thread pool by the cores the process may use, once;
- `sched_setaffinity` pins the calling thread and the threads it starts
  later, not those already running, so it must run while the process has
  one thread. A parent's `preexec_fn` would do it between fork and exec,
  but Python documents that as unsafe in a parent with threads, and a
  parent that has imported JAX has them.
"""

from __future__ import annotations

import os

from flaxdil.errors import ConfigError

# Also for a user: FLAXDIL_CORES=0,1 flaxdil ... runs on cores 0 and 1.
VARIABLE = 'FLAXDIL_CORES'


def environment_pinned_to(cores: set[int]) -> dict[str, str]:
  """This process's environment, with `cores` given to a child it starts."""
  return dict(os.environ, **{VARIABLE: ','.join(map(str, sorted(cores)))})


def pin_from_environment() -> None:
  """Pins this process to the cores $FLAXDIL_CORES names, if set. Call it
  first thing in an entry point, before anything imports JAX."""
  given = os.environ.get(VARIABLE)
  if not given:
    return
  try:
    os.sched_setaffinity(0, {int(c) for c in given.split(',')})
  except (ValueError, OSError) as e:
    raise ConfigError(
        f'{VARIABLE}={given!r} does not name cores this process may use '
        f'({sorted(os.sched_getaffinity(0))}): {e}. Fix: give them comma-'
        f'separated, e.g. {VARIABLE}=0,1, or unset it to use them all.'
    ) from None
