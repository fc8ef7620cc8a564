"""The training loop: set up a run in a workdir, train it, summarise it.

`train_and_evaluate(config, workdir)` trains config's model in workdir,
resuming what is there, evaluates the checkpoint that validation selected on
the test split and writes WORKDIR/summary.json. The pure steps are
flaxdil.steps; device placement flaxdil.devices; evaluation
flaxdil.evaluation.
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import jax
import ml_collections
import numpy as np
import optax

from flaxdil import checkpoints, data, devices, evaluation, model_summary, steps
from flaxdil.devices import PmappedModel
from flaxdil.metrics_log import MetricsWriter, Progress, format_duration


@dataclasses.dataclass
class _Run:
  """What set-up prepares and the loop and the summary use."""
  config: ml_collections.ConfigDict
  workdir: str
  pmapped: PmappedModel
  epoch_steps: int
  total_steps: int
  learning_rate_fn: optax.Schedule
  state: Any                 # steps.TrainState, on the host until the loop
  start_step: int
  num_params: int
  train_data: dict           # the training split, replicated
  data_keys: Any
  validation_batches: list
  num_train: int
  num_validation: int
  store: checkpoints.CheckpointStore

  @property
  def eval_every(self) -> int:
    return (self.config.eval_every_steps if self.config.eval_every_steps > 0
            else self.epoch_steps)

  @property
  def checkpoint_every(self) -> int:
    return (self.config.checkpoint_every_steps
            if self.config.checkpoint_every_steps > 0 else self.eval_every)


def _set_up(config: ml_collections.ConfigDict, workdir: str,
            device_list=None) -> _Run:
  """Everything before the first step; what can fail on bad input runs
  before the workdir is touched."""
  pmapped = PmappedModel(config, device_list)
  checkpoints.check_workdir_config(config, workdir)
  train_split, validation = data.train_validation_split(
      data.load_split(config, config.train_split), config.validation_size)
  epoch_steps = data.steps_per_epoch(len(train_split), config.batch_size)
  total_steps = steps.total_train_steps(config, epoch_steps)
  learning_rate_fn = steps.create_learning_rate_fn(config, epoch_steps,
                                                   total_steps)

  os.makedirs(workdir, exist_ok=True)
  checkpoints.save_workdir_config(config, workdir)
  store = checkpoints.CheckpointStore(workdir, config.keep_checkpoints)
  init_rng, data_rng = jax.random.split(jax.random.key(config.seed))
  state = steps.create_train_state(config, pmapped.model, init_rng,
                                   pmapped.info.image_shape, learning_rate_fn)
  if (latest := store.latest_step()) is not None:
    state = store.restore(latest, state)
    print(f'Resumed from {store.directory} at step {latest}.', flush=True)
  placed = pmapped.devices
  return _Run(
      config=config, workdir=workdir, pmapped=pmapped, epoch_steps=epoch_steps,
      total_steps=total_steps, learning_rate_fn=learning_rate_fn,
      state=state, start_step=int(state.step),
      num_params=sum(x.size for x in jax.tree_util.tree_leaves(state.params)),
      train_data=devices.replicate({'image': train_split.images,
                                    'label': train_split.labels}, placed),
      data_keys=devices.replicate(data_rng, placed),
      validation_batches=pmapped.eval_batches(validation),
      num_train=len(train_split), num_validation=len(validation),
      store=store)


def _validate(run: _Run, state, step: int, writer: MetricsWriter) -> dict:
  """Evaluates on the validation hold-out; returns the checkpoint's metrics."""
  result = evaluation.evaluate_batches(run.pmapped.eval_step, state,
                                       run.validation_batches)
  writer.write(step, 'validation',
               {'accuracy': result['accuracy'], 'loss': result['loss'],
                'epoch': step / run.epoch_steps})
  print(f'  validation: accuracy {result["accuracy"]:.4f} '
        f'loss {result["loss"]:.4f} ({result["num_examples"]} examples)',
        flush=True)
  return {checkpoints.BEST_METRIC: result['accuracy'],
          'validation_loss': result['loss']}


def _train(run: _Run) -> None:
  """Steps from run.start_step to run.total_steps, logging, validating and
  checkpointing on the way."""
  config, pmapped = run.config, run.pmapped
  p_train_step = pmapped.pmap_train_step(run.learning_rate_fn)
  state = devices.replicate(run.state, pmapped.devices)
  writer = MetricsWriter(run.workdir)
  progress = Progress(run.total_steps, run.epoch_steps, config.batch_size,
                      run.start_step)
  print(f'Training {config.model} ({run.num_params:,} params, '
        f'{pmapped.model.describe()}) on {config.dataset}: {run.num_train} '
        f'train / {run.num_validation} validation examples, '
        f'{run.total_steps} steps of {config.batch_size} on '
        f'{len(pmapped.devices)} {pmapped.devices[0].platform} device(s).',
        flush=True)
  train_metrics = []
  try:
    for step in range(run.start_step + 1, run.total_steps + 1):
      if train_metrics:
        # At most two steps in flight: enough to hide dispatch, and a bounded
        # queue (see evaluation.evaluate_batches).
        jax.block_until_ready(train_metrics[-1])
      state, metrics = p_train_step(state, run.train_data, run.data_keys)
      train_metrics.append(metrics)
      if step % config.log_every_steps == 0 or step == run.total_steps:
        host = [devices.unreplicate(m) for m in train_metrics]
        summary = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
        summary['images_per_sec'] = progress.update(step, summary)
        summary['epoch'] = step / run.epoch_steps
        writer.write(step, 'train', summary)
        train_metrics = []
      validate_now = step % run.eval_every == 0 or step == run.total_steps
      if validate_now or step % run.checkpoint_every == 0:
        paused = progress.pause()
        metrics = _validate(run, state, step, writer) if validate_now else None
        run.store.save(step, devices.unreplicate(state), metrics)
        progress.resume(paused)
  finally:
    run.store.close()
    writer.close()


def _summarize(run: _Run, start_time: float, train_seconds: float) -> dict:
  """Evaluates the checkpoint that validation selected on the test split;
  writes and returns WORKDIR/summary.json."""
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
      'wall_time_sec': time.time() - start_time,
      'train_wall_time_sec': train_seconds,
      'devices': f'{len(pmapped.devices)} x {pmapped.devices[0].device_kind}',
  }
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
  also written to WORKDIR/summary.json."""
  start_time = time.time()
  run = _set_up(config, workdir, device_list)
  _train(run)
  return _summarize(run, start_time, time.time() - start_time)
