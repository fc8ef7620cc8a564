"""Evaluation over a whole split, and restoring a checkpoint to evaluate it.

Every example counts once: the last batch is padded and masked
(flaxdil.data.batches.padded_eval_batches). Used by training (validation,
the final test) and by --mode=eval, --mode=inspect and --mode=export.
"""

from __future__ import annotations

import functools
import os
import time
from typing import NamedTuple

import jax
import ml_collections
import numpy as np

from flaxdil.config import rules
from flaxdil.config.args import with_fields
from flaxdil.data.source import DatasetInfo
from flaxdil.distributed import processes
from flaxdil.errors import FlaxdilError, WorkdirError
from flaxdil.training import devices as placement
from flaxdil.training import inputs, steps
from flaxdil.training.devices import Devices
from flaxdil.workdir import checkpoints, files, record


def pmapped_eval_step(config: ml_collections.ConfigDict, info: DatasetInfo,
                      devices: Devices):
  """steps.eval_step pmapped over devices.all."""
  return jax.pmap(functools.partial(steps.eval_step, info=info,
                                    **steps.test_time_augmentation(config)),
                  axis_name=steps.AXIS, devices=devices.all)


def evaluate_batches(eval_step, state, batches) -> dict:
  """Accuracy and mean loss over every example of the batches.

  Args:
    eval_step: a pmapped `steps.eval_step`.
    state: replicated on its devices.
    batches: placed, padded and masked (a Pipeline's).

  Returns:
    {'accuracy', 'loss', 'num_examples'}.
  """
  # Each batch is fetched before the next is dispatched: a long queue of
  # psum programs can starve one host device's thread past XLA:CPU's
  # collective rendezvous timeout when devices are faked on few cores.
  per_batch = [placement.unreplicate(eval_step(state, batch))
               for batch in batches]
  totals = {k: float(np.sum([sums[k] for sums in per_batch], dtype=np.float64))
            for k in per_batch[0]}
  count = float(totals['count'])
  return {'accuracy': float(totals['correct']) / count,
          'loss': float(totals['loss_sum']) / count,
          'num_examples': int(round(count))}


def restore_checkpoint(config: ml_collections.ConfigDict, info: DatasetInfo,
                       workdir: str, step: int | None = None
                       ) -> tuple[steps.TrainState, int]:
  """The weights evaluation uses, saved in workdir at `step` (default: the
  best on validation), as a state without optimizer.

  Where training kept an EMA of the weights, the state holds the EMA: what
  validation selected and what evaluation uses. The caller has checked that
  the workdir holds a run of this model (record.check_identity).
  """
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise FlaxdilError(
        f'no checkpoints in {workdir!r}. Fix: train first with '
        f'--workdir={workdir}, or point --workdir at a training workdir.')
  model = steps.create_model(config, info)
  store = checkpoints.CheckpointStore(workdir, create=False)
  try:
    if step is None:
      # Without a hold-out nothing was validated: the final weights are
      # the run's result (loop.summarize tests them).
      step = (store.best_step() if config.validation_size
              else store.latest_step())
    if step is None and store.latest_step() is not None:
      # A run stopped before its first validation: its latest weights.
      step = store.latest_step()
      print(f'No checkpoint in {store.directory} was validated yet: using '
            f'the latest, of step {step}.')
    if step is None:
      raise FlaxdilError(f'{store.directory} holds no checkpoint; train '
                         'first or pick another --workdir.')
    # Evaluation needs no optimizer state, so the training optimizer (which
    # may differ from this config's) does not have to be known.
    abstract = steps.abstract_train_state(config, model, info.image_shape)
    wanted = ({'ema': abstract.ema} if abstract.ema is not None else
              {'params': abstract.params, 'batch_stats': abstract.batch_stats})
    try:
      variables = store.restore(step, wanted, partial=True)
    except checkpoints.DamagedCheckpoint as e:
      raise WorkdirError(
          f'checkpoint {step} in {store.directory} is damaged ({e}). Fix: '
          f'evaluate another with --checkpoint_step (steps held: '
          f'{store.all_steps()}).') from None
    variables = variables.get('ema', variables)
  finally:
    store.close()
  return steps.inference_state(model, variables), step


def evaluate_state(pipeline: inputs.Pipeline, eval_step, state, step: int,
                   workdir: str, split: str) -> dict:
  """Evaluates `state` (the checkpoint of `step`, on the host) on a whole
  split, read by `pipeline`; writes WORKDIR/eval_SPLIT.json."""
  batches = pipeline.eval_batches(split)
  start = time.time()
  result = evaluate_batches(eval_step, pipeline.devices.replicate(state),
                            batches)
  result.update({'step': int(step), 'split': split,
                 'dataset': pipeline.config.dataset,
                 'eval_seconds': time.time() - start})
  if processes.is_primary():
    files.write_json_atomic(os.path.join(workdir, f'eval_{split}.json'),
                            result)
  return result


class Restored(NamedTuple):
  """A workdir's checkpoint restored for evaluation, and what it ran on."""
  state: steps.TrainState      # On the host, without optimizer state.
  step: int
  config: ml_collections.ConfigDict  # With the workdir's data location.
  info: DatasetInfo
  devices: Devices


def restore_state(config: ml_collections.ConfigDict, workdir: str,
                  step: int | None = None, device_list=None) -> Restored:
  """Checks the config and that workdir holds a run of its model, then
  restores the checkpoint of `step` (default: the best) for evaluation.
  Where config leaves the data's location unset, the workdir's recorded
  one is used (record.with_recorded_data_location)."""
  config = record.with_recorded_data_location(config, workdir)
  devices = Devices.of(device_list)
  info = rules.check_run(config, devices.all)
  record.check_identity(config, workdir)
  state, step = restore_checkpoint(config, info, workdir, step)
  return Restored(state, step, config, info, devices)


def from_weights(weights) -> Restored:
  """A released weight (flaxdil.pretrained.Pretrained) as a restored
  checkpoint: its network, variables and config."""
  state = steps.inference_state(
      steps.create_model(weights.config, weights.info), weights.variables)
  return Restored(state, weights.provenance.get('step', 0), weights.config,
                  weights.info, Devices.of())


def evaluate_restored(restored: Restored, workdir: str,
                      split: str | None = None) -> dict:
  """Evaluates a restored checkpoint on a whole split (default: the test
  split); writes WORKDIR/eval_SPLIT.json."""
  config, info, devices = restored.config, restored.info, restored.devices
  (size,) = rules.check_splits(config, {'--split': split} if split else
                               {'config.test_split': config.test_split}
                               ).values()
  pipeline = inputs.choose(config, info, devices, size)
  return evaluate_state(pipeline, pmapped_eval_step(config, info, devices),
                        restored.state, restored.step, workdir,
                        split or config.test_split)


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str,
                        split: str | None = None,
                        step: int | None = None) -> dict:
  """Evaluates a saved checkpoint on a whole split (default: the test
  split); writes WORKDIR/eval_SPLIT.json."""
  return evaluate_restored(restore_state(config, workdir, step), workdir,
                           split)


def retest(config: ml_collections.ConfigDict, trained: str, step: int,
           workdir: str) -> dict:
  """The weights of `step` in the workdir `trained` (another run's), tested
  as `config` reads them (with or without their EMA, test-time
  augmentation) on the whole test split; writes WORKDIR/eval_SPLIT.json.
  The caller has checked that config trains what that run trained."""
  devices = Devices.of()
  info = rules.check_run(config, devices.all)
  # The same model, whichever of the weights (the EMA or not) config reads.
  saved = record.read_config(trained) or {}
  record.check_identity(with_fields(
      config, ema_decay=saved.get('ema_decay', config.ema_decay)), trained)
  state, step = restore_checkpoint(config, info, trained, step)
  return evaluate_restored(Restored(state, step, config, info, devices),
                           workdir)
