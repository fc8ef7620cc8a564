"""What a user sees: progress lines, metrics.jsonl and TensorBoard events,
and the steps' metrics read from the devices for them."""

from __future__ import annotations

import contextlib
import json
import os
import time

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
  """The rate and ETA of training between logging steps, and the line that
  says them: computed and printed by separate calls."""

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

  def rate(self, step: int) -> float:
    """Images/s since the last call (`step`: steps done), and marks it."""
    now = time.perf_counter()
    rate = (step - self._step) * self.batch_size / max(now - self._time, 1e-9)
    self._mark(step)
    return rate

  def line(self, step: int, metrics: dict) -> str:
    """The progress line of `step`: metrics holds the interval's loss,
    accuracy, learning_rate and images_per_sec."""
    rate = metrics['images_per_sec']
    eta = (self.total_steps - step) * self.batch_size / max(rate, 1e-9)
    eta_text = (format_duration(eta) if self._compiled
                else 'at the next log (this interval compiled)')
    self._compiled = True
    width = len(str(self.total_steps))
    return (f'step {step:{width}d}/{self.total_steps} '
            f'epoch {step / self.steps_per_epoch:6.2f} '
            f'loss {metrics["loss"]:.4f} acc {metrics["accuracy"]:.4f} '
            f'lr {metrics["learning_rate"]:.2e} {rate:7.1f} img/s '
            f'ETA {eta_text}')


class NonFiniteStep(Exception):
  """A step's loss or gradients, or the weights after it, are not finite."""

  def __init__(self, step: int, what: str):
    super().__init__(f'step {step}: {what}')
    self.step, self.what = step, what


class StepMetrics:
  """The one holder of dispatched steps' metrics: on the devices until the
  loop needs them (logging, and before each save), since reading them
  every step would make the host wait for every step before dispatching
  the next; and the back-pressure on dispatches.

  Reading them checks that every step was finite: the first that was not
  raises NonFiniteStep unless such steps are skipped.
  """

  def __init__(self, skip_nonfinite: bool, in_flight: int):
    """in_flight: dispatches the host may run ahead of the devices (`add`
    waits for older ones)."""
    self._skip_nonfinite = skip_nonfinite
    self._in_flight = in_flight
    self._dispatched = []  # (first step, steps, metrics on the devices)
    self._read = []        # Per step, on the host, not yet taken.

  def add(self, first_step: int, num_steps: int, metrics) -> None:
    """metrics: a dispatch's, each (devices, num_steps). Waits until at
    most `in_flight` dispatches are unfinished."""
    self._dispatched.append((first_step, num_steps, metrics))
    if len(self._dispatched) > self._in_flight:
      jax.block_until_ready(self._dispatched[-self._in_flight - 1][2])

  def check(self) -> None:
    """Reads every dispatched step's metrics, in one transfer."""
    fetched = jax.device_get([m for _, _, m in self._dispatched])
    for (first, num_steps, _), metrics in zip(self._dispatched, fetched):
      # The first device's replica: metrics are the same on every device.
      per_step = {k: np.atleast_1d(v[0]) for k, v in metrics.items()}
      for i in range(num_steps):
        host = {k: float(v[i]) for k, v in per_step.items()}
        if host['nonfinite'] and not self._skip_nonfinite:
          raise NonFiniteStep(first + i, f'the loss ({host["loss"]}) or a '
                              'gradient is not finite')
        self._read.append(host)
    self._dispatched = []

  def take(self) -> list[dict]:
    """The steps' metrics since the last take, checked."""
    self.check()
    read, self._read = self._read, []
    return read
