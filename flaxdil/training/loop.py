"""The training loop: `train_and_evaluate(config, workdir)` checks the run,
sets it up (flaxdil.training.setup), trains it (`train`) and summarises it
(`summarize`).

It resumes what the workdir holds, evaluates the checkpoint that validation
selected on the test split and writes WORKDIR/summary.json. The pure steps
are flaxdil.training.steps; device placement flaxdil.training.devices;
evaluation flaxdil.training.evaluation; when each periodic action is due
flaxdil.training.periodic.

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

import os
import time

import jax
import ml_collections
import numpy as np

from flaxdil.config import rules
from flaxdil.distributed import preemption, processes
from flaxdil.errors import Preempted, TrainingDiverged, WorkdirError
from flaxdil.inspection import summary as model_summary
from flaxdil.training import evaluation, inputs, setup
from flaxdil.training.devices import Devices, unreplicate
from flaxdil.training.metrics_log import (MetricsWriter, NonFiniteStep,
                                          Progress, StepMetrics,
                                          format_duration)
from flaxdil.training.periodic import Clock, itstime, steps_to_next
from flaxdil.training.profiling import ProfileWindow
from flaxdil.workdir import checkpoints, files, lock, record


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       device_list=None) -> dict:
  """Trains config's model in workdir (resuming what is there) on
  device_list (default: all devices); returns the final summary, also
  written to WORKDIR/summary.json.

  Raises errors.Preempted after saving a checkpoint when SIGTERM or SIGINT
  arrives, errors.TrainingDiverged on a non-finite step, and another
  FlaxdilError on bad input (before the workdir is touched).
  """
  # Everything that can refuse the run, before the workdir is created: the
  # config, its devices and dataset, the workdir's record, the weights it
  # starts from, its lock (at once, without the data), then the splits.
  config = record.with_recorded_data_location(config, workdir)
  devices = Devices.of(device_list)
  info = rules.check_run(config, devices.all)
  lock.check_path(workdir)
  changes = record.check_resume(config, workdir)
  seed = setup.init_seed(config, info, workdir)  # config.init_from
  held = lock.lock_for_run(workdir) if os.path.isdir(workdir) else None
  try:
    sizes = rules.check_splits(config, rules.training_splits(config))
    pipeline = inputs.choose(
        config, info, devices,
        sizes['config.train_split'] - config.validation_size)
    print(f'Input pipeline: {pipeline.name} ({pipeline.reason}).', flush=True)
    # Before the workdir is touched: decoding is the slow part of set-up.
    pipeline.load_training()
    held = held or lock.lock_for_run(workdir)  # Agreed once by all processes.
    run = setup.start(config, info, devices, pipeline, workdir, changes, seed)
    return summarize(run, train(run))
  except OSError as e:
    if files.is_disk_full(e):  # Writing metrics or results.
      raise WorkdirError(
          f'the disk holding --workdir={workdir!r} is full ({e}). The '
          'checkpoints already written are intact. Fix: free space there '
          'and run the same command again to resume.') from None
    raise
  finally:
    if held:
      held.release()


# Dispatches the host may run ahead of the devices: enough to hide the
# host's per-dispatch cost, and a bounded queue (see
# evaluation.evaluate_batches for what a long queue does on faked devices).
_IN_FLIGHT = 2


def train(run: setup.Run) -> float:
  """Steps from run.start_step to the budget's last, logging, validating and
  checkpointing on the way; returns the training seconds of all sessions.

  A checkpoint is saved every config.checkpoint_every_steps, at every
  validation, once config.checkpoint_every_minutes passed since the last
  one, and after the step in which SIGTERM or SIGINT arrived (then
  errors.Preempted is raised). The host never waits for a step's metrics
  to dispatch the next: it reads them where it logs and before every save,
  and stops there if a step was not finite (errors.TrainingDiverged).
  """
  config, steps_of = run.config, run.budget
  total = steps_of.total_steps
  _announce(run)
  state = run.devices.replicate(run.state)
  # The same batches and augmentation on any number of devices and
  # processes, in either input pipeline (flaxdil.training.inputs).
  train_inputs = run.pipeline.train_inputs(run.keys.order, run.start_step,
                                           total)
  augment_key = run.devices.replicate(run.keys.augment)
  resident = run.pipeline.resident
  writer = MetricsWriter(run.workdir, resume_step=run.start_step,
                         write_files=processes.is_primary())
  progress = Progress(total, steps_of.epoch_steps, config.batch_size,
                      run.start_step)
  save_clock = Clock(config.checkpoint_every_minutes)
  profile = ProfileWindow(config.profile_steps, run.workdir, run.start_step)
  step_metrics = StepMetrics(config.skip_nonfinite_steps, _IN_FLIGHT)
  run.train_seconds.start_session()
  step = run.start_step
  try:
    with preemption.Watch() as signals, processes.loss_is_an_error(run.store):
      profile.at(step)
      while step < total:
        size = _block_size(run, step, (*profile.edges,
                                       steps_of.early_steps))
        with jax.profiler.StepTraceAnnotation('train', step_num=step + 1):
          state, metrics = run.program(step)(state, train_inputs.next(size),
                                             augment_key, resident)
        step_metrics.add(step + 1, size, metrics)
        step += size
        profile.at(step, state)

        log = itstime(step, steps_of.log_every, total)
        if log:
          _log_train(run, writer, progress, step, step_metrics.take())
        validate = itstime(step, steps_of.eval_every, total,
                           last=steps_of.eval_every > 0)  # 0: no hold-out.
        stop = signals.requested(step)
        save = validate or stop or itstime(step, steps_of.checkpoint_every,
                                           total)
        if not save:
          # A collective (process 0 decides): asked where all processes said no.
          save = save_clock.due(may_ask=log)
        if save:
          step_metrics.check()  # Nothing non-finite is saved.
          with progress.paused():
            _save(run, step, state,
                  _validate(run, state, step, writer) if validate else None)
          save_clock.reset()
        if stop:
          writer.flush()
          run.store.wait()
          raise Preempted(
              f'{signals.cause()} after step {step}: checkpoint {step} is '
              f'saved in {run.store.directory}. Resume: run the same command '
              'again.')
  except NonFiniteStep as e:
    raise _diverged(run, e) from None
  finally:
    profile.stop()
    run.pipeline.close()
    run.store.close()
    writer.close()
  return run.train_seconds.total()


def _announce(run: setup.Run) -> None:
  config = run.config
  print(f'Training {config.model} ({run.num_params:,} params, '
        f'{run.model.describe()}) on {config.dataset}: '
        f'{run.pipeline.num_train} train / {run.pipeline.num_validation} '
        f'validation examples, {run.budget.total_steps} steps of '
        f'{config.batch_size} on {run.devices.describe()}'
        + (f', {config.steps_per_dispatch} per dispatch'
           if config.steps_per_dispatch > 1 else '')
        + (f', the first {run.budget.early_steps} on '
           f'{config.early_size}x{config.early_size} images '
           f'({config.early_mode})'
           if run.budget.early_steps else '') + '.', flush=True)


def _block_size(run: setup.Run, step: int, marks) -> int:
  """Steps in the next dispatch: config.steps_per_dispatch, or 1 where a
  block would pass a step at which something is due (so every step-based
  action happens exactly at its step)."""
  size, steps_of = run.config.steps_per_dispatch, run.budget
  if size > 1 and steps_to_next(
      step, (steps_of.log_every, steps_of.eval_every,
             steps_of.checkpoint_every), steps_of.total_steps, marks) < size:
    return 1
  return size


def _log_train(run: setup.Run, writer: MetricsWriter, progress: Progress,
               step: int, metrics: list[dict]) -> None:
  """One line and one record for the steps since the last: their mean
  metrics, the learning rate of this step's update (from the schedule, on
  the host) and the rate."""
  nonfinite = sum(m.pop('nonfinite') for m in metrics)
  summary = {k: float(np.mean([m[k] for m in metrics])) for k in metrics[0]}
  summary['learning_rate'] = float(run.schedule(step - 1))
  if run.config.skip_nonfinite_steps:
    summary['nonfinite_steps'] = nonfinite
  summary['images_per_sec'] = progress.rate(step)
  summary['epoch'] = step / run.budget.epoch_steps
  print(progress.line(step, summary), flush=True)
  writer.write(step, 'train', summary)


def _validate(run: setup.Run, state, step: int,
              writer: MetricsWriter) -> dict:
  """Evaluates on the validation hold-out; returns the checkpoint's metrics."""
  result = evaluation.evaluate_batches(run.eval_step, state,
                                       run.pipeline.validation_batches())
  writer.write(step, 'validation',
               {'accuracy': result['accuracy'], 'loss': result['loss'],
                'epoch': step / run.budget.epoch_steps})
  print(f'  validation: accuracy {result["accuracy"]:.4f} '
        f'loss {result["loss"]:.4f} ({result["num_examples"]} examples)',
        flush=True)
  return {checkpoints.BEST_METRIC: result['accuracy'],
          'validation_loss': result['loss']}


def _save(run: setup.Run, step: int, state, metrics: dict | None) -> None:
  """A checkpoint of `step` (asynchronous), and the training time at it."""
  host = unreplicate(state)
  if not _all_finite(host):  # Finite loss and gradients, yet overflowed.
    raise NonFiniteStep(step, 'the updated weights are not finite')
  run.store.save(step, host, metrics)
  run.train_seconds.record(step, run.store.all_steps())


def _diverged(run: setup.Run, error: NonFiniteStep) -> TrainingDiverged:
  """The one error a non-finite step ends the run with, naming the last
  good checkpoint (after the saves in flight are written)."""
  run.store.wait()
  latest = run.store.latest_step()
  last_good = (f'the last good checkpoint is step {latest} in '
               f'{run.store.directory}' if latest is not None
               else 'no checkpoint had been saved')
  return TrainingDiverged(
      f'training diverged at step {error.step}: {error.what}. Nothing from '
      f'that step on was saved; {last_good}. Fix: lower '
      f'--config.learning_rate (now {run.config.learning_rate}) and train in '
      'a new --workdir, or set --config.skip_nonfinite_steps=True to skip '
      'such steps.')


def _all_finite(tree) -> bool:
  return all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)
             if np.issubdtype(np.asarray(x).dtype, np.inexact))


def summarize(run: setup.Run, train_seconds: float) -> dict:
  """Evaluates the checkpoint that validation selected on the test split;
  writes and returns WORKDIR/summary.json."""
  start = time.monotonic()
  config = run.config
  # No hold-out (the budget never validates): the final weights are tested.
  final = None if run.budget.eval_every else run.budget.total_steps
  state, best_step = evaluation.restore_checkpoint(config, run.info,
                                                   run.workdir, final)
  test = evaluation.evaluate_state(run.pipeline, run.eval_step, state,
                                   best_step, run.workdir, config.test_split)
  summary = {
      'test_accuracy': test['accuracy'], 'test_loss': test['loss'],
      'test_split': config.test_split, 'best_step': test['step'],
      'final_step': run.budget.total_steps, 'num_params': run.num_params,
      'total_macs': model_summary.summarize(
          run.model, run.info.image_shape)['total_macs'],
      'steps_per_epoch': run.budget.epoch_steps,
      # Training counts every session of a resumed run, each up to the
      # checkpoint the next one resumed from; the whole adds this final test.
      'wall_time_sec': train_seconds + time.monotonic() - start,
      'train_wall_time_sec': train_seconds,
      'devices': run.devices.describe(),
      # The CPU cores this process could run on (pinned ones, beside other
      # runs, are fewer): XLA:CPU's threads, and the host's share of work.
      'cores': len(os.sched_getaffinity(0)),
      'input_pipeline': run.pipeline.name,
      'replaced_training_records': run.pipeline.replaced_records,
  }
  if processes.is_primary():
    files.write_json_atomic(os.path.join(run.workdir, 'summary.json'), summary)
  print(f'Done in {format_duration(summary["wall_time_sec"])}: test accuracy '
        f'{test["accuracy"]:.4f} on {test["num_examples"]} {config.test_split} '
        f'examples (checkpoint of step {test["step"]}, '
        f'{"the final weights" if final else "best on validation"}), '
        f'{run.num_params:,} params.', flush=True)
  return summary
