"""Setting up a training run: its data (in the input pipeline it will use),
then, in the locked workdir, its schedule, its state (new or the newest
intact checkpoint's) and the record of the session. Returns what it made,
for the loop and the final summary.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import ml_collections
import optax

from flaxdil.data import batches
from flaxdil.errors import WorkdirError
from flaxdil.training import inputs, steps
from flaxdil.training.devices import PmappedModel
from flaxdil.workdir import checkpoints, record

# Fields whose change gives the run another length (and so another
# learning-rate schedule after the step it resumes from).
_LENGTH_FIELDS = ('num_epochs', 'num_train_steps')


@dataclasses.dataclass(frozen=True)
class Run:
  """A training run, set up: everything the loop and the summary use."""
  config: ml_collections.ConfigDict
  workdir: str
  pmapped: PmappedModel
  data: inputs.TrainingData
  epoch_steps: int
  total_steps: int
  schedule: optax.Schedule
  store: checkpoints.CheckpointStore
  state: steps.TrainState      # On the host: new, or the checkpoint's.
  data_rng: Any                # Batch order and augmentation.
  train_seconds: checkpoints.TrainSeconds

  @property
  def start_step(self) -> int:
    return int(self.state.step)

  @property
  def eval_every(self) -> int:
    return (self.config.eval_every_steps if self.config.eval_every_steps > 0
            else self.epoch_steps)

  @property
  def checkpoint_every(self) -> int:
    return (self.config.checkpoint_every_steps
            if self.config.checkpoint_every_steps > 0 else self.eval_every)

  @property
  def num_params(self) -> int:
    return sum(x.size for x in jax.tree_util.tree_leaves(self.state.params))


def read_data(pmapped: PmappedModel, sizes: dict[str, int]
              ) -> inputs.TrainingData:
  """The training split and the validation hold-out in the input pipeline
  that config.input_pipeline picks (sizes: rules.check_splits's), before
  the workdir is touched: decoding is the slow part of set-up."""
  config = pmapped.config
  pipeline, reason = inputs.choose(
      config, pmapped.info, sizes['config.train_split'] - config.validation_size,
      pmapped.local_devices[0])
  print(f'Input pipeline: {pipeline} ({reason}).', flush=True)
  return inputs.TrainingData(pmapped, pipeline, reason)


def start(pmapped: PmappedModel, workdir: str, data: inputs.TrainingData,
          changes: dict) -> Run:
  """The run in the locked workdir. changes: what this session changes of
  the recorded config (flaxdil.workdir.record.check_resume)."""
  config = pmapped.config
  epoch_steps = batches.steps_per_epoch(data.num_train, config.batch_size)
  total_steps = steps.total_train_steps(config, epoch_steps)
  schedule = steps.create_learning_rate_fn(config, epoch_steps, total_steps)
  train_seconds = checkpoints.TrainSeconds(workdir)  # Read before writing.
  store = checkpoints.CheckpointStore(workdir, config.keep_checkpoints)
  init_rng, data_rng = jax.random.split(jax.random.key(config.seed))
  state = steps.create_train_state(config, pmapped.model, init_rng,
                                   pmapped.info.image_shape, schedule)
  restored, latest = store.restore_latest_intact(state)
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
                       devices=pmapped.describe_devices())
  if changes:
    print('This session changes ' + ', '.join(
        f'{f} from {a!r} to {b!r}' for f, (a, b) in changes.items())
          + ' (recorded in sessions.jsonl).', flush=True)
  if restored is not None and set(changes) & set(_LENGTH_FIELDS):
    print(f'The run now ends at step {total_steps}: from step {latest} on '
          f'the learning rate follows the schedule of that length (now '
          f'{float(schedule(latest)):.3g}).', flush=True)
  return Run(config=config, workdir=workdir, pmapped=pmapped, data=data,
             epoch_steps=epoch_steps, total_steps=total_steps,
             schedule=schedule, store=store, state=state, data_rng=data_rng,
             train_seconds=train_seconds)
