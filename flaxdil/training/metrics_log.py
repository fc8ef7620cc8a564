"""What a user sees: progress lines, metrics.jsonl and TensorBoard events,
and the steps' metrics read from the devices for them."""

from __future__ import annotations

import contextlib
import json
import os
import time
from typing import Callable

import jax
import numpy as np

from flaxdil.workdir.files import strict_json, write_text_atomic


def format_duration(seconds: float) -> str:
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  minutes, seconds = divmod(rest, 60)
  return f'{hours}:{minutes:02d}:{seconds:02d}' if hours else f'{minutes}:{seconds:02d}'


class MetricsWriter:
  """Appends each record to WORKDIR/metrics.jsonl and to TensorBoard events.

  tensorboardX writes the event files, so reading them needs TensorBoard but
  writing them needs no TensorFlow. A run resumed from the checkpoint of
  `resume_step` first drops what the interrupted session logged after that
  step (it will be logged again): from metrics.jsonl by rewriting it, from
  TensorBoard by a purge event, which TensorBoard applies when it reads.
  """

  def __init__(self, workdir: str, resume_step: int = 0,
               write_files: bool = True):
    """write_files=False: a writer that writes nothing (every process of a
    multi-process run but process 0)."""
    self._jsonl = self._tb = None
    if not write_files:
      return
    from tensorboardX import SummaryWriter  # Deferred: only training writes.
    path = os.path.join(workdir, 'metrics.jsonl')
    if resume_step and os.path.exists(path):
      _drop_records_after(path, resume_step)
    self._jsonl = open(path, 'a')
    self._tb = SummaryWriter(os.path.join(workdir, 'tensorboard'),
                             purge_step=resume_step + 1 if resume_step else None)

  def write(self, step: int, split: str, metrics: dict) -> None:
    if self._jsonl is None:
      return
    record = {'step': int(step), 'split': split, 'time': time.time()}
    record.update({k: float(v) for k, v in metrics.items()})
    self._jsonl.write(json.dumps(strict_json(record), allow_nan=False) + '\n')
    self._jsonl.flush()
    for name, value in metrics.items():
      self._tb.add_scalar(f'{split}/{name}', float(value), int(step))

  def flush(self) -> None:
    if self._jsonl is None:
      return
    self._jsonl.flush()
    os.fsync(self._jsonl.fileno())
    self._tb.flush()

  def close(self) -> None:
    if self._jsonl is None:
      return
    self.flush()
    self._jsonl.close()
    self._tb.close()


def _drop_records_after(path: str, step: int) -> None:
  """Rewrites metrics.jsonl (atomically) without records of later steps, and
  without a last line cut short by a kill."""
  kept = []
  with open(path) as f:
    for line in f:
      try:
        record = json.loads(line)
      except ValueError:
        continue
      if record.get('step', 0) <= step:
        kept.append(line if line.endswith('\n') else line + '\n')
  write_text_atomic(path, ''.join(kept))


class Progress:
  """One line per logging interval: step, epoch, loss, accuracy, rate, ETA."""

  def __init__(self, total_steps: int, steps_per_epoch: int, batch_size: int,
               start_step: int):
    self.total_steps = total_steps
    self.steps_per_epoch = steps_per_epoch
    self.batch_size = batch_size
    # A session's first interval holds the compile (~10 s here), so its
    # rate says nothing of the ETA: after a resume that interval can be one
    # step, and its ETA days.
    self._compiled = False
    self._mark(start_step)

  def _mark(self, step: int) -> None:
    self._step, self._time = step, time.perf_counter()

  @contextlib.contextmanager
  def paused(self):
    """Around work that is not training (evaluation, saving): its time does
    not count in the rate."""
    paused_at = time.perf_counter()
    try:
      yield
    finally:
      self._time += time.perf_counter() - paused_at

  def update(self, step: int, metrics: dict) -> float:
    """Prints a line for `step` (steps done); returns images/s since last."""
    now = time.perf_counter()
    rate = (step - self._step) * self.batch_size / max(now - self._time, 1e-9)
    eta = (self.total_steps - step) * self.batch_size / max(rate, 1e-9)
    self._mark(step)
    eta_text = format_duration(eta) if self._compiled else 'at the next log (this interval compiled)'
    self._compiled = True
    width = len(str(self.total_steps))
    print(f'step {step:{width}d}/{self.total_steps} '
          f'epoch {step / self.steps_per_epoch:6.2f} '
          f'loss {metrics["loss"]:.4f} acc {metrics["accuracy"]:.4f} '
          f'lr {metrics["learning_rate"]:.2e} {rate:7.1f} img/s '
          f'ETA {eta_text}', flush=True)
    return rate


class StepMetrics:
  """The metrics of dispatched steps, read on the host only where the loop
  needs them (logging, and before each save): reading them every step
  would make the host wait for every step before dispatching the next.

  Reading them checks that every step was finite: the first that was not
  raises diverged(step, loss) unless such steps are skipped.
  """

  def __init__(self, skip_nonfinite: bool,
               diverged: Callable[[int, float], Exception]):
    self._skip_nonfinite = skip_nonfinite
    self._diverged = diverged
    self._dispatched = []  # (first step, steps, metrics on the devices)
    self._read = []        # Per step, on the host, not yet taken.

  def add(self, first_step: int, num_steps: int, metrics) -> None:
    """metrics: a dispatch's, each (devices,), or (devices, num_steps)."""
    self._dispatched.append((first_step, num_steps, metrics))

  def check(self) -> None:
    """Reads every dispatched step's metrics, in one transfer."""
    fetched = jax.device_get([m for _, _, m in self._dispatched])
    for (first, num_steps, _), metrics in zip(self._dispatched, fetched):
      # The first device's replica: metrics are the same on every device.
      per_step = {k: np.atleast_1d(v[0]) for k, v in metrics.items()}
      for i in range(num_steps):
        host = {k: float(v[i]) for k, v in per_step.items()}
        if host['nonfinite'] and not self._skip_nonfinite:
          raise self._diverged(first + i, host['loss'])
        self._read.append(host)
    self._dispatched = []

  def take(self) -> list[dict]:
    """The steps' metrics since the last take, checked."""
    self.check()
    read, self._read = self._read, []
    return read
