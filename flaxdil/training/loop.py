"""The training loop: set up a run in a workdir, train it, summarise it.

`train_and_evaluate(config, workdir)` trains config's model in workdir,
resuming what is there, evaluates the checkpoint that validation selected on
the test split and writes WORKDIR/summary.json. The pure steps are
flaxdil.steps; device placement flaxdil.devices; evaluation
flaxdil.evaluation.

What a run survives: SIGTERM/SIGINT (a checkpoint of the current step, then
errors.Preempted), kill -9 (resume from the last checkpoint, bitwise as if
uninterrupted), a non-finite step (errors.TrainingDiverged before anything
non-finite is saved, or the step skipped), damaged checkpoints (the newest
intact one is used), a second run on the same workdir (refused).

With several processes (flaxdil.distributed) every process runs this same
loop over its own devices and takes every decision at the same step: what
they compute is global (pmean, psum), the stop after a signal is JAX's
preemption sync point, and a save by time follows process 0's clock.
Process 0 alone writes logs and results; a lost process ends the others
(errors.ProcessLost).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import time
from typing import Any

import jax
import ml_collections
import numpy as np
import optax

from flaxdil import (checkpoints, data, devices, distributed, evaluation,
                     model_summary, preemption, steps)
from flaxdil.devices import PmappedModel
from flaxdil.errors import (Preempted, ProcessLost, TrainingDiverged,
                            WorkdirError)
from flaxdil.metrics_log import MetricsWriter, Progress, format_duration
from flaxdil.workdir_lock import WorkdirLock

# Training seconds (all sessions) at each checkpoint, so that the time of a
# resumed run counts every session.
_TRAIN_SECONDS = 'train_seconds.json'


@dataclasses.dataclass
class _Run:
  """What set-up prepares and the loop and the summary use."""
  config: ml_collections.ConfigDict
  workdir: str
  pmapped: PmappedModel
  epoch_steps: int
  total_steps: int
  learning_rate_fn: optax.Schedule
  train_split: data.Split
  validation: data.Split
  # Set by _restore, once the workdir is locked:
  store: checkpoints.CheckpointStore | None = None
  state: Any = None          # steps.TrainState, on the host
  start_step: int = 0
  data_rng: Any = None       # Batch order and augmentation.
  # Training seconds of all sessions at each checkpoint up to start_step
  # (WORKDIR/train_seconds.json).
  train_seconds: dict = dataclasses.field(default_factory=dict)

  @property
  def eval_every(self) -> int:
    return (self.config.eval_every_steps if self.config.eval_every_steps > 0
            else self.epoch_steps)

  @property
  def checkpoint_every(self) -> int:
    return (self.config.checkpoint_every_steps
            if self.config.checkpoint_every_steps > 0 else self.eval_every)

  @property
  def earlier_train_seconds(self) -> float:
    """Of the sessions before this one, up to the checkpoint resumed from."""
    return self.train_seconds.get(str(self.start_step), 0.0)

  @property
  def num_params(self) -> int:
    return sum(x.size for x in jax.tree_util.tree_leaves(self.state.params))


def _prepare(pmapped: PmappedModel, workdir: str) -> _Run:
  """Reads the data and fixes the schedule (before the workdir is touched:
  this too can fail on bad input)."""
  config = pmapped.config
  train_split, validation = data.train_validation_split(
      data.load_split(config, config.train_split), config.validation_size)
  epoch_steps = data.steps_per_epoch(len(train_split), config.batch_size)
  total_steps = steps.total_train_steps(config, epoch_steps)
  return _Run(config=config, workdir=workdir, pmapped=pmapped,
              epoch_steps=epoch_steps, total_steps=total_steps,
              learning_rate_fn=steps.create_learning_rate_fn(
                  config, epoch_steps, total_steps),
              train_split=train_split, validation=validation)


def _check_workdir_path(workdir: str) -> None:
  """What can be told about the workdir without creating it."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f'--workdir={workdir!r} is a file, not a directory. '
                       'Fix: point --workdir at a directory (new or a '
                       'training workdir).')
  existing = os.path.abspath(workdir)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.access(existing, os.W_OK | os.X_OK) or (
      os.statvfs(existing).f_flag & os.ST_RDONLY):
    raise WorkdirError(f'cannot write to --workdir={workdir!r} ({existing} '
                       'is read-only). Fix: use a directory you can write to.')


class _LockOfProcess0:
  """What a process other than 0 holds: process 0 locked the workdir for the
  whole run."""

  def release(self) -> None:
    pass


def _lock(workdir: str) -> WorkdirLock | _LockOfProcess0:
  """Creates the workdir if needed and takes its lock (process 0, for every
  process of the run), or says why not (on every process)."""
  if not distributed.is_primary():
    distributed.agree('workdir-lock', None)  # Raises process 0's refusal.
    return _LockOfProcess0()
  lock = WorkdirLock(workdir, jax.process_count())

  def acquire():
    try:
      os.makedirs(workdir, exist_ok=True)
      lock.acquire()
    except OSError as e:
      raise WorkdirError(f'cannot write to --workdir={workdir!r} '
                         f'({e.strerror}). Fix: use a directory you can '
                         'write to, on a disk with free space.') from None

  distributed.agree('workdir-lock', acquire)
  return lock


def _restore(run: _Run) -> None:
  """The initial state, or the newest intact checkpoint's (in the locked
  workdir)."""
  config = run.config
  checkpoints.save_workdir_config(config, run.workdir)
  run.store = checkpoints.CheckpointStore(run.workdir, config.keep_checkpoints)
  init_rng, run.data_rng = jax.random.split(jax.random.key(config.seed))
  state = steps.create_train_state(config, run.pmapped.model, init_rng,
                                   run.pmapped.info.image_shape,
                                   run.learning_rate_fn)
  restored, latest = run.store.restore_latest_intact(state)
  if restored is not None:
    state = restored
    print(f'Resumed from {run.store.directory} at step {latest}.', flush=True)
  run.state, run.start_step = state, int(state.step)
  path = os.path.join(run.workdir, _TRAIN_SECONDS)
  if restored is not None and os.path.exists(path):
    with open(path) as f:
      run.train_seconds = {k: v for k, v in json.load(f).items()
                           if int(k) <= run.start_step}


def _validate(run: _Run, state, validation_batches, step: int,
              writer: MetricsWriter) -> dict:
  """Evaluates on the validation hold-out; returns the checkpoint's metrics."""
  result = evaluation.evaluate_batches(run.pmapped.eval_step, state,
                                       validation_batches)
  writer.write(step, 'validation',
               {'accuracy': result['accuracy'], 'loss': result['loss'],
                'epoch': step / run.epoch_steps})
  print(f'  validation: accuracy {result["accuracy"]:.4f} '
        f'loss {result["loss"]:.4f} ({result["num_examples"]} examples)',
        flush=True)
  return {checkpoints.BEST_METRIC: result['accuracy'],
          'validation_loss': result['loss']}


def _diverged(run: _Run, step: int, what: str) -> TrainingDiverged:
  run.store.wait()
  latest = run.store.latest_step()
  last_good = (f'the last good checkpoint is step {latest} in '
               f'{run.store.directory}' if latest is not None
               else 'no checkpoint had been saved')
  return TrainingDiverged(
      f'training diverged at step {step}: {what}. Nothing from that step on '
      f'was saved; {last_good}. Fix: lower --config.learning_rate (now '
      f'{run.config.learning_rate}) and train in a new --workdir, or set '
      '--config.skip_nonfinite_steps=True to skip such steps.')


def _check_finite(run: _Run, metrics, step: int) -> None:
  """Stops after a non-finite step, unless such steps are skipped."""
  if not run.config.skip_nonfinite_steps and float(metrics['nonfinite'][0]):
    raise _diverged(run, step, f'the loss ({float(metrics["loss"][0])}) or '
                    'a gradient is not finite')


def _all_finite(tree) -> bool:
  return all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
             if np.issubdtype(np.asarray(x).dtype, np.inexact))


@contextlib.contextmanager
def _process_loss_is_an_error(run: _Run):
  """With several processes, a failed collective almost always means that
  another process is gone: one clear error (errors.ProcessLost) instead of
  a runtime traceback."""
  try:
    yield
  except jax.errors.JaxRuntimeError as e:
    if jax.process_count() == 1:
      raise
    latest = run.store.latest_step()
    raise ProcessLost(
        f'process {jax.process_index()} of {jax.process_count()}: a '
        f'collective failed ({str(e).strip().splitlines()[0][:200]}); another '
        'process of this run has most likely stopped (see its log). The last '
        f'checkpoint is step {latest} in {run.store.directory}. Fix: restart '
        'every process with the same command to resume.') from None


def _train(run: _Run) -> float:
  """Steps from run.start_step to run.total_steps, logging, validating and
  checkpointing on the way; returns the training seconds of all sessions.

  A checkpoint is saved every config.checkpoint_every_steps, at every
  validation, once config.checkpoint_every_minutes passed since the last
  one, and after the step in which SIGTERM or SIGINT arrived (then
  errors.Preempted is raised).
  """
  config, pmapped = run.config, run.pmapped
  p_train_step = pmapped.pmap_train_step(run.learning_rate_fn)
  # Each device holds the whole training split (uint8) and gathers its share
  # of every global batch itself (steps.train_on_device_data): the same
  # batches and augmentation on any number of devices and processes.
  placed = pmapped.local_devices
  state = devices.replicate(run.state, placed)
  train_data = devices.replicate({'image': run.train_split.images,
                                  'label': run.train_split.labels}, placed)
  data_keys = devices.replicate(run.data_rng, placed)
  validation_batches = pmapped.eval_batches(run.validation)
  writer = MetricsWriter(run.workdir, resume_step=run.start_step,
                         write_files=distributed.is_primary())
  progress = Progress(run.total_steps, run.epoch_steps, config.batch_size,
                      run.start_step)
  print(f'Training {config.model} ({run.num_params:,} params, '
        f'{pmapped.model.describe()}) on {config.dataset}: '
        f'{len(run.train_split)} train / {len(run.validation)} validation '
        f'examples, {run.total_steps} steps of {config.batch_size} on '
        f'{pmapped.describe_devices()}.',
        flush=True)
  session_start = last_save = time.monotonic()
  train_seconds = dict(run.train_seconds)

  def save(step, state, metrics):
    host = devices.unreplicate(state)
    if not _all_finite(host):  # Finite loss and gradients, yet overflowed.
      raise _diverged(run, step, 'the updated weights are not finite')
    run.store.save(step, host, metrics)
    train_seconds[str(step)] = (run.earlier_train_seconds
                                + time.monotonic() - session_start)
    kept = set(run.store.all_steps()) | {step}
    if distributed.is_primary():
      checkpoints.write_json_atomic(
          os.path.join(run.workdir, _TRAIN_SECONDS),
          {k: v for k, v in train_seconds.items() if int(k) in kept})

  def save_due(step) -> bool:
    minutes = config.checkpoint_every_minutes
    if step % run.checkpoint_every == 0:
      return True
    if not minutes or (jax.process_count() > 1
                       and step % config.log_every_steps):
      return False
    # Every process must take part in every save, and their clocks differ:
    # with several, process 0's clock decides, at logging steps.
    return distributed.process_0_decides(
        time.monotonic() - last_save >= 60 * minutes)

  train_metrics, metrics = [], None
  try:
    with preemption.Watch() as signals, _process_loss_is_an_error(run):
      for step in range(run.start_step + 1, run.total_steps + 1):
        if metrics is not None:
          # At most two steps in flight: enough to hide dispatch, and a
          # bounded queue (see evaluation.evaluate_batches).
          jax.block_until_ready(metrics)
          _check_finite(run, metrics, step - 1)
        state, metrics = p_train_step(state, train_data, data_keys)
        train_metrics.append(metrics)
        if step % config.log_every_steps == 0 or step == run.total_steps:
          host = [devices.unreplicate(m) for m in train_metrics]
          nonfinite = sum(float(m.pop('nonfinite')) for m in host)
          summary = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
          if config.skip_nonfinite_steps:
            summary['nonfinite_steps'] = nonfinite
          summary['images_per_sec'] = progress.update(step, summary)
          summary['epoch'] = step / run.epoch_steps
          writer.write(step, 'train', summary)
          train_metrics = []
        validate_now = step % run.eval_every == 0 or step == run.total_steps
        stop = signals.requested(step)
        if validate_now or stop or save_due(step):
          _check_finite(run, metrics, step)
          paused = progress.pause()
          save(step, state, _validate(run, state, validation_batches, step,
                                      writer) if validate_now else None)
          last_save = time.monotonic()
          progress.resume(paused)
        if stop:
          writer.flush()
          run.store.wait()
          cause = (signal.Signals(signals.received).name
                   if signals.received else
                   'a preemption notice (SIGTERM to a process of this run)')
          raise Preempted(
              f'{cause} after step {step}: checkpoint {step} is saved in '
              f'{run.store.directory}. Resume: run the same command again.')
  finally:
    run.store.close()
    writer.close()
  return run.earlier_train_seconds + time.monotonic() - session_start


def _summarize(run: _Run, train_seconds: float) -> dict:
  """Evaluates the checkpoint that validation selected on the test split;
  writes and returns WORKDIR/summary.json."""
  start = time.monotonic()
  config, pmapped = run.config, run.pmapped
  state, best_step = evaluation.restore_checkpoint(pmapped, run.workdir)
  test = evaluation.evaluate_state(pmapped, state, best_step, run.workdir,
                                   config.test_split)
  summary = {
      'test_accuracy': test['accuracy'], 'test_loss': test['loss'],
      'test_split': config.test_split, 'best_step': test['step'],
      'final_step': run.total_steps, 'num_params': run.num_params,
      'total_macs': model_summary.summarize(
          pmapped.model, pmapped.info.image_shape)['total_macs'],
      'steps_per_epoch': run.epoch_steps,
      # Training counts every session of a resumed run, each up to the
      # checkpoint the next one resumed from; the whole adds this final test.
      'wall_time_sec': train_seconds + time.monotonic() - start,
      'train_wall_time_sec': train_seconds,
      'devices': pmapped.describe_devices(),
  }
  if distributed.is_primary():
    checkpoints.write_json_atomic(os.path.join(run.workdir, 'summary.json'),
                                  summary)
  print(f'Done in {format_duration(summary["wall_time_sec"])}: test accuracy '
        f'{test["accuracy"]:.4f} on {test["num_examples"]} {config.test_split} '
        f'examples (checkpoint of step {test["step"]}, best on validation), '
        f'{run.num_params:,} params.', flush=True)
  return summary


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       device_list=None) -> dict:
  """Trains config's model in workdir (resuming what is there) on
  device_list (default: all local devices); returns the final summary,
  also written to WORKDIR/summary.json.

  Raises errors.Preempted after saving a checkpoint when SIGTERM or SIGINT
  arrives, errors.TrainingDiverged on a non-finite step, and another
  FlaxdilError on bad input (before the workdir is touched).
  """
  pmapped = PmappedModel(config, device_list)  # Checks the whole config.
  checkpoints.check_workdir_config(config, workdir)
  _check_workdir_path(workdir)
  # A workdir in use is refused at once, before the data is read. (Each
  # process agrees on the lock once: here, or after reading the data.)
  lock = _lock(workdir) if os.path.isdir(workdir) else None
  try:
    run = _prepare(pmapped, workdir)
    lock = lock or _lock(workdir)
    _restore(run)
    return _summarize(run, _train(run))
  except OSError as e:
    if checkpoints.is_disk_full(e):  # Writing metrics or results.
      raise WorkdirError(
          f'the disk holding --workdir={workdir!r} is full ({e}). The '
          'checkpoints already written are intact. Fix: free space there '
          'and run the same command again to resume.') from None
    raise
  finally:
    if lock:
      lock.release()
