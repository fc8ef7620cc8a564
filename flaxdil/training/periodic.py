"""When the loop does what it does periodically: one rule for every action.

`itstime` is the one question the loop asks for logging, validation and
checkpoints (google-research/big_vision's `u.itstime` is the model); `Clock`
adds checkpoints by wall-clock time, decided alike on every process.
"""

from __future__ import annotations

import time

import jax

from flaxdil.distributed import processes


def itstime(step: int, every: int, total_steps: int, last: bool = True
            ) -> bool:
  """Whether an action that runs every `every` steps (<= 0: never) is due
  after `step` steps; with `last`, also after the last of `total_steps`."""
  return (every > 0 and step % every == 0) or (last and step == total_steps)


def steps_to_next(step: int, everies, total_steps: int, marks=()) -> int:
  """Steps from `step` to the next step at which any action that runs
  every one of `everies` steps, or one at any of `marks`, is due (the last
  step counts): the most steps one dispatch may run without passing one."""
  ahead = [every - step % every for every in everies if every > 0]
  ahead += [mark - step for mark in marks if mark > step]
  return min(ahead + [total_steps - step])


class Clock:
  """Due once `minutes` passed since the last `reset` (0: never).

  Every process must take part in a save, and their clocks differ: with
  several processes process 0's clock decides, and it is asked only at
  steps where every process asks (`may_ask`, e.g. the logging steps).
  """

  def __init__(self, minutes: float):
    self.minutes = minutes
    self.reset()

  def reset(self) -> None:
    self._since = time.monotonic()

  def due(self, may_ask: bool) -> bool:
    if not self.minutes or (jax.process_count() > 1 and not may_ask):
      return False
    return processes.process_0_decides(
        time.monotonic() - self._since >= 60 * self.minutes)
