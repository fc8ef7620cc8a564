"""Stopping cleanly on SIGTERM or SIGINT (preemption, Ctrl-C, a scheduler).

While `Watch` is active, the first signal only sets a flag: the loop finishes
the dispatch in flight (one step, or a block of config.steps_per_dispatch;
its progress line still prints where it ends a logging interval), saves a
checkpoint after it and stops (errors.Preempted, exit code 75). Further
signals are ignored until the save is done, so a second Ctrl-C cannot tear
a checkpoint (Orbax writes each checkpoint to a temporary directory and
renames it when complete; even kill -9 mid-save leaves the previous
checkpoints intact).

With several processes (jax.distributed) every process must stop after the
same step, so a local flag is not enough: `requested(step)` then asks JAX's
preemption sync point. JAX's coordination service hears SIGTERM on any
process (its own handler, installed by jax.distributed.initialize) and names
one step at which all processes see True. Here SIGINT (Ctrl-C) is turned
into a SIGTERM to this process, so it stops the run the same way.
"""

from __future__ import annotations

import os
import signal
import sys

import jax

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Watch:
  """Context manager: installs the handlers, restores the old ones on exit."""

  def __init__(self):
    self.received: int | None = None
    self._previous = {}

  def _handle(self, signum, frame):
    del frame
    if self.received is None:
      self.received = signum
      print(f'\nReceived {signal.Signals(signum).name}: the steps already '
            'dispatched finish (their progress line may still print), then a '
            'checkpoint is saved after them and training stops.',
            file=sys.stderr, flush=True)

  def _forward_to_sigterm(self, signum, frame):
    del frame
    if self.received is None:
      self.received = signum
      print(f'\nReceived {signal.Signals(signum).name}: telling every '
            'process to save a checkpoint after the same step and stop.',
            file=sys.stderr, flush=True)
      os.kill(os.getpid(), signal.SIGTERM)

  def __enter__(self) -> 'Watch':
    if jax.process_count() == 1:
      for signum in SIGNALS:
        self._previous[signum] = signal.signal(signum, self._handle)
    else:  # JAX's handler keeps SIGTERM.
      self._previous[signal.SIGINT] = signal.signal(signal.SIGINT,
                                                    self._forward_to_sigterm)
    return self

  def __exit__(self, *exc):
    for signum, handler in self._previous.items():
      signal.signal(signum, handler)

  def cause(self) -> str:
    """What asked the run to stop, in words."""
    if self.received:
      return signal.Signals(self.received).name
    return 'a preemption notice (SIGTERM to a process of this run)'

  def requested(self, step: int) -> bool:
    """Whether to stop after `step` (the same answer on every process)."""
    if jax.process_count() > 1:
      from jax.experimental import multihost_utils
      return multihost_utils.reached_preemption_sync_point(step)
    return self.received is not None
