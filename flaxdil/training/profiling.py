"""A profiler window over training steps (config.profile_steps 'A:B'):
jax.profiler traces the steps after step A up to step B into
WORKDIR/profile/, each dispatch annotated with its step, for TensorBoard's
profile plugin (xprof) or Perfetto.
"""

from __future__ import annotations

import glob
import os

import jax

from flaxdil.config import values
from flaxdil.distributed import processes


class ProfileWindow:
  """Starts the trace when the loop reaches step A, stops it at step B.

  The loop asks `at(step)` after every dispatch (and once before the
  first); with several steps per dispatch A and B are dispatch boundaries
  (they are among the loop's due steps, `edges`). A run resumed inside the
  window traces from where it resumed; one resumed past it traces nothing.
  """

  def __init__(self, profile_steps: str, workdir: str, start_step: int):
    window = values.profile_window(profile_steps) if profile_steps else None
    self.first, self.last = window or (None, None)
    self.directory = os.path.join(workdir, 'profile')
    if jax.process_count() > 1:  # Each process writes its own trace.
      self.directory = os.path.join(self.directory,
                                    f'process_{jax.process_index()}')
    self._tracing = False
    self._start_step = start_step

  @property
  def edges(self) -> tuple[int, ...]:
    return () if self.first is None else (self.first, self.last)

  def at(self, step: int, state=None) -> None:
    """After `step` steps (state: what the last dispatch returned)."""
    if self.first is None:
      return
    if not self._tracing and self.first <= step < self.last and (
        step == self.first or step == self._start_step):
      os.makedirs(self.directory, exist_ok=True)
      jax.profiler.start_trace(self.directory)
      self._tracing, self._traced_from = True, step
    elif self._tracing and step >= self.last:
      jax.block_until_ready(state)  # The traced steps' device work, whole.
      self.stop()

  def stop(self) -> None:
    if not self._tracing:
      return
    jax.profiler.stop_trace()
    self._tracing = False
    runs = sorted(glob.glob(os.path.join(self.directory, 'plugins',
                                         'profile', '*')))
    if processes.is_primary():
      print(f'Profile of steps {self._traced_from + 1}-{self.last} written to '
            f'{runs[-1] if runs else self.directory}. Open it with '
            f'`tensorboard --logdir {self.directory}` (its profile plugin: '
            'pip install xprof) or load its .trace.json.gz in '
            'https://ui.perfetto.dev.', flush=True)
