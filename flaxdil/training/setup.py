"""Setting up a training run in its locked workdir: its budget and schedule,
its state (new or the newest intact checkpoint's), its compiled steps and
the record of the session. Returns what it made, for the loop and the final
summary.
"""

from __future__ import annotations

import dataclasses
import functools
import os

import jax
import ml_collections
import optax

from flaxdil.config import budget as budgets
from flaxdil.data import batches
from flaxdil.data.source import DatasetInfo
from flaxdil.errors import WorkdirError
from flaxdil.training import evaluation, init_from, inputs, steps
from flaxdil.training.devices import Devices
from flaxdil.workdir import checkpoints, record

# Fields whose change gives the run another length (and so another
# learning-rate schedule after the step it resumes from).
_LENGTH_FIELDS = ('num_epochs', 'num_train_steps')


@dataclasses.dataclass(frozen=True)
class Run:
  """A training run, set up: everything the loop and the summary use."""
  config: ml_collections.ConfigDict
  workdir: str
  info: DatasetInfo
  devices: Devices
  model: object
  pipeline: inputs.Pipeline
  budget: budgets.Budget
  schedule: optax.Schedule
  store: checkpoints.CheckpointStore
  state: steps.TrainState      # On the host: new, or the checkpoint's.
  keys: steps.RunKeys
  train_seconds: checkpoints.TrainSeconds
  train_steps: object          # steps.train_steps, pmapped.
  # The same on config.early_size images, for budget.early_steps.
  early_train_steps: object | None
  eval_step: object            # steps.eval_step, pmapped.

  @property
  def start_step(self) -> int:
    return int(self.state.step)

  def program(self, step: int):
    """The train-steps program of the block from `step`: on smaller images
    while config.early_epochs last, then on whole ones."""
    return (self.early_train_steps if step < self.budget.early_steps
            else self.train_steps)

  @property
  def num_params(self) -> int:
    return sum(x.size for x in jax.tree_util.tree_leaves(self.state.params))


def pmapped_train_steps(config: ml_collections.ConfigDict, info: DatasetInfo,
                        devices: Devices, early_size: int | None = None):
  """steps.train_steps pmapped over devices.all: one program per block
  length (pmap compiles on the first call of each shape). The state is
  donated: its buffers are reused for the next state."""
  return jax.pmap(functools.partial(steps.train_steps, config=config,
                                    info=info, early_size=early_size),
                  axis_name=steps.AXIS, devices=devices.all,
                  donate_argnums=(0,))


def init_seed(config: ml_collections.ConfigDict, info: DatasetInfo,
              workdir: str) -> init_from.Seed | None:
  """config.init_from, loaded and checked against config's network, for a
  run that starts (not one that resumes: its checkpoint holds its weights).
  """
  saved = os.path.join(workdir, 'checkpoints')
  if not config.init_from or (os.path.isdir(saved) and any(
      name.isdigit() for name in os.listdir(saved))):
    return None
  seed = init_from.prepare(config, steps.create_model(config, info),
                           info.image_shape)
  print(init_from.describe(seed), flush=True)
  return seed


def start(config: ml_collections.ConfigDict, info: DatasetInfo,
          devices: Devices, pipeline: inputs.Pipeline, workdir: str,
          changes: dict, seed: init_from.Seed | None = None) -> Run:
  """The run in the locked workdir, its training data loaded.

  Args:
    changes: what this session changes of the recorded config
      (flaxdil.workdir.record.check_resume).
    seed: the weights a new run starts from (init_seed); ignored where the
      workdir holds a checkpoint to resume.
  """
  steps_of = budgets.budget(config, batches.steps_per_epoch(
      pipeline.num_train, config.batch_size))
  total_steps = steps_of.total_steps
  schedule = budgets.learning_rate_schedule(config, steps_of)
  model = steps.create_model(config, info)
  keys = steps.run_keys(config.seed)
  train_seconds = checkpoints.TrainSeconds(workdir)  # Read before writing.
  store = checkpoints.CheckpointStore(workdir, config.keep_checkpoints)
  state = steps.create_train_state(config, model, keys.init,
                                   info.image_shape, schedule)
  restored, latest = store.restore_latest_intact(state)
  if restored is None and config.init_from:
    # A start, or a run whose every checkpoint was damaged: seeded again.
    state = init_from.apply(state, seed or init_seed(config, info, workdir))
  if restored is not None:
    state = restored
    print(f'Resumed from {store.directory} at step {latest}.', flush=True)
    if total_steps < latest:
      store.close()
      raise WorkdirError(
          f'this config trains {total_steps} steps, but the run in '
          f'{workdir!r} is at step {latest} already. Fix: set '
          f'--config.num_train_steps >= {latest} (or num_epochs), or train '
          'in a new --workdir.')
  train_seconds.resume_from(latest)
  record.start_session(config, workdir, changes, start_step=int(state.step),
                       devices=devices.describe())
  if changes:
    print('This session changes ' + ', '.join(
        f'{f} from {a!r} to {b!r}' for f, (a, b) in changes.items())
          + ' (recorded in sessions.jsonl).', flush=True)
  if restored is not None and set(changes) & set(_LENGTH_FIELDS):
    print(f'The run now ends at step {total_steps}: from step {latest} on '
          f'the learning rate follows the schedule of that length (now '
          f'{float(schedule(latest)):.3g}).', flush=True)
  return Run(config=config, workdir=workdir, info=info, devices=devices,
             model=model, pipeline=pipeline, budget=steps_of,
             schedule=schedule, store=store, state=state, keys=keys,
             train_seconds=train_seconds,
             train_steps=pmapped_train_steps(config, info, devices),
             early_train_steps=(pmapped_train_steps(
                 config, info, devices, config.early_size)
                                if config.early_size else None),
             eval_step=evaluation.pmapped_eval_step(config, info, devices))
