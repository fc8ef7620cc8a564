"""Training and evaluation: pmapped pure steps, driven by a config.

The steps are pure functions of (state, batch, key): under `jax.pmap` with
axis name 'batch' each device computes its shard, gradients and metrics are
averaged with `lax.pmean`, and BatchNorm statistics are global because the
model's BatchNorm layers share the axis name.
"""

from __future__ import annotations

import functools
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging
from flax.training import train_state
from jax import lax

from flaxdil import checkpoints, data, model_summary, models
from flaxdil.errors import ConfigError, FlaxdilError
from flaxdil.metrics_log import MetricsWriter, Progress, format_duration

AXIS = 'batch'


class TrainState(train_state.TrainState):
  batch_stats: Any
  # With config.ema_decay > 0: {'params', 'batch_stats'} averaged over the
  # steps; evaluation and checkpoint selection use it. None otherwise.
  ema: Any = None


def eval_variables(state: TrainState) -> dict:
  """The variables that evaluation uses: the EMA where there is one."""
  if state.ema is not None:
    return state.ema
  return {'params': state.params, 'batch_stats': state.batch_stats}


def update_ema(ema, params, batch_stats, step, decay: float):
  """One step of the exponential moving average of the weights.

  The decay ramps up as (1 + step) / (10 + step) so that the average is not
  anchored to the random initialisation early in training.
  """
  decay = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree_util.tree_map(
      lambda average, new: decay * average + (1.0 - decay) * new,
      ema, {'params': params, 'batch_stats': batch_stats})


# --- Construction -----------------------------------------------------------


def steps_per_epoch(config: ml_collections.ConfigDict, num_train: int) -> int:
  steps = num_train // config.batch_size
  if steps < 1:
    raise ConfigError(
        f'config.batch_size={config.batch_size} is larger than the '
        f'{num_train} training examples; lower it.')
  return steps


def total_train_steps(config: ml_collections.ConfigDict, num_train: int) -> int:
  if config.num_train_steps > 0:
    return config.num_train_steps
  if config.num_epochs <= 0:
    raise ConfigError('set config.num_epochs > 0 or config.num_train_steps > 0.')
  return int(math.ceil(config.num_epochs * steps_per_epoch(config, num_train)))


def create_learning_rate_fn(config: ml_collections.ConfigDict,
                            epoch_steps: int, total_steps: int
                            ) -> optax.Schedule:
  """Linear warm-up to config.learning_rate, then cosine decay or constant."""
  warmup = min(int(config.warmup_epochs * epoch_steps), total_steps)
  if warmup and warmup == total_steps:
    # Short budgeted runs hit this silently: the rate would rise all run long.
    logging.warning(
        'config.warmup_epochs=%s covers all %d training steps, so the '
        'learning rate only rises and never decays; lower warmup_epochs.',
        config.warmup_epochs, total_steps)
  peak = config.learning_rate
  if config.lr_schedule == 'cosine':
    after = optax.cosine_decay_schedule(peak, max(total_steps - warmup, 1))
  elif config.lr_schedule == 'constant':
    after = optax.constant_schedule(peak)
  else:
    raise ConfigError(f'config.lr_schedule must be cosine or constant, got '
                      f'{config.lr_schedule!r}.')
  if not warmup:
    return after
  return optax.join_schedules(
      [optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def create_optimizer(config: ml_collections.ConfigDict,
                     learning_rate_fn: optax.Schedule
                     ) -> optax.GradientTransformation:
  """Adam; with weight decay, AdamW decaying only kernels (not BN or biases)."""
  if config.weight_decay:
    decay_mask = lambda params: jax.tree_util.tree_map_with_path(
        lambda path, _: path[-1].key == 'kernel', params)
    return optax.adamw(learning_rate_fn, weight_decay=config.weight_decay,
                       mask=decay_mask)
  return optax.adam(learning_rate_fn)


def create_train_state(config: ml_collections.ConfigDict, model, rng,
                       image_shape, learning_rate_fn) -> TrainState:
  """Initialises parameters and optimizer state (on the default device)."""
  tx = create_optimizer(config, learning_rate_fn)

  # One compiled program: initialising op by op would compile every op.
  @jax.jit
  def init(rng):
    variables = model.init(rng, jnp.zeros((1,) + tuple(image_shape)),
                           train=False)
    ema = dict(variables) if config.ema_decay else None
    return TrainState.create(apply_fn=model.apply, params=variables['params'],
                             batch_stats=variables['batch_stats'], tx=tx,
                             ema=ema)

  return init(rng)


# --- Steps ------------------------------------------------------------------


def cross_entropy(logits, labels, label_smoothing: float = 0.0):
  targets = optax.smooth_labels(
      jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def train_step(state: TrainState, batch, augment_keys, *,
               config: ml_collections.ConfigDict, info: data.DatasetInfo,
               learning_rate_fn: optax.Schedule):
  """One optimizer step on this device's shard; call under pmap(AXIS).

  batch: {'image': uint8 (B, H, W, C), 'label': int32 (B,)};
  augment_keys: one PRNG key per example.
  """
  images = data.augment(batch['image'], augment_keys, config.crop_padding,
                        config.random_flip)
  images = data.normalize(images, info.mean, info.std)

  def loss_fn(params):
    logits, updates = state.apply_fn(
        {'params': params, 'batch_stats': state.batch_stats}, images,
        train=True, mutable=['batch_stats'])
    loss = cross_entropy(logits, batch['label'], config.label_smoothing).mean()
    return loss, (logits, updates['batch_stats'])

  (loss, (logits, batch_stats)), grads = jax.value_and_grad(
      loss_fn, has_aux=True)(state.params)
  grads = lax.pmean(grads, AXIS)
  metrics = lax.pmean({
      'loss': loss,
      'accuracy': jnp.mean(jnp.argmax(logits, -1) == batch['label']),
  }, AXIS)
  metrics['learning_rate'] = learning_rate_fn(state.step)
  new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  if state.ema is not None:
    new_state = new_state.replace(ema=update_ema(
        state.ema, new_state.params, batch_stats, state.step,
        config.ema_decay))
  return new_state, metrics


def eval_step(state: TrainState, batch, *, info: data.DatasetInfo,
              test_time_flip: bool = False):
  """Summed loss and correct predictions over the unmasked examples.

  test_time_flip: classify by the mean of the logits of each image and its
  mirror image.
  """
  images = data.normalize(batch['image'], info.mean, info.std)
  variables = eval_variables(state)
  predict = lambda images: state.apply_fn(variables, images, train=False)
  logits = predict(images)
  if test_time_flip:
    logits = (logits + predict(images[:, :, ::-1])) / 2
  mask = batch['mask'].astype(jnp.float32)
  return lax.psum({
      'loss_sum': jnp.sum(cross_entropy(logits, batch['label']) * mask),
      'correct': jnp.sum((jnp.argmax(logits, -1) == batch['label']) * mask),
      'count': jnp.sum(mask),
  }, AXIS)


def train_on_device_data(state: TrainState, train_data, key, *,
                         config: ml_collections.ConfigDict,
                         info: data.DatasetInfo,
                         learning_rate_fn: optax.Schedule):
  """Gathers this device's share of the step's batch, then `train_step`.

  train_data is the whole training split, uint8, on this device. The batch
  and the augmentation keys depend on (key, step, example position) only, so
  data order and augmentation are the same on any number of devices and after
  a resume.
  """
  num_devices = lax.axis_size(AXIS)
  per_device = config.batch_size // num_devices
  order_key, augment_key = jax.random.split(key)
  indices = data.epoch_batch_indices(
      order_key, state.step, train_data['label'].shape[0], config.batch_size)
  positions = lax.axis_index(AXIS) * per_device + jnp.arange(per_device)
  local = indices[positions]
  batch = {'image': train_data['image'][local],
           'label': train_data['label'][local]}
  step_key = jax.random.fold_in(augment_key, state.step)
  augment_keys = jax.vmap(jax.random.fold_in, (None, 0))(step_key, positions)
  return train_step(state, batch, augment_keys, config=config, info=info,
                    learning_rate_fn=learning_rate_fn)


# --- Devices ----------------------------------------------------------------


def _sharding(devices) -> jax.sharding.Sharding:
  # Named like the pmap axis: pmap's outputs carry exactly this sharding, so
  # arrays placed here and arrays returned by a step hit the same compiled
  # program (another axis name would compile every step twice).
  mesh = jax.sharding.Mesh(np.array(devices), (AXIS,))
  return jax.NamedSharding(mesh, jax.P(AXIS))


def shard(tree, devices):
  """Places arrays shaped (len(devices), ...) one slice per device."""
  sharding = _sharding(devices)
  return jax.tree_util.tree_map(lambda x: jax.device_put(x, sharding), tree)


def replicate(tree, devices):
  """A copy of every array on every device, stacked on a leading axis."""
  def stack(x):
    x = x if isinstance(x, jax.Array) else np.asarray(x)
    return (jnp if isinstance(x, jax.Array) else np).broadcast_to(
        x[None], (len(devices),) + x.shape)
  return shard(jax.tree_util.tree_map(stack, tree), devices)


def unreplicate(tree):
  """The first replica, on the host (replicas agree after every step)."""
  return jax.tree_util.tree_map(lambda x: x[0], jax.device_get(tree))


def check_devices(config: ml_collections.ConfigDict, devices) -> None:
  for field in ('batch_size', 'eval_batch_size'):
    if config[field] % len(devices):
      raise ConfigError(
          f'config.{field}={config[field]} is not divisible by the '
          f'{len(devices)} devices ({devices[0].platform}); use a multiple of '
          f'{len(devices)}, e.g. --config.{field}='
          f'{max(1, config[field] // len(devices)) * len(devices)}.')


def evaluate(p_eval_step, state, batches) -> dict:
  """Accuracy and mean loss over every example of the batches."""
  # Each batch is fetched before the next is dispatched: a long queue of
  # psum programs can starve one host device's thread past XLA:CPU's
  # collective rendezvous timeout when devices are faked on few cores.
  per_batch = [unreplicate(p_eval_step(state, batch)) for batch in batches]
  totals = {k: float(np.sum([sums[k] for sums in per_batch], dtype=np.float64))
            for k in per_batch[0]}
  count = float(totals['count'])
  return {'accuracy': float(totals['correct']) / count,
          'loss': float(totals['loss_sum']) / count,
          'num_examples': int(round(count))}


class Experiment:
  """Devices, dataset metadata, model and pmapped steps of one config."""

  def __init__(self, config: ml_collections.ConfigDict, devices=None):
    self.config = config
    self.devices = devices or jax.local_devices()
    check_devices(config, self.devices)
    self.info = data.dataset_info(config)
    self.model = models.create_model(config, self.info.num_classes,
                                     axis_name=AXIS)
    self.p_eval_step = jax.pmap(
        functools.partial(eval_step, info=self.info,
                          test_time_flip=config.test_time_flip),
        axis_name=AXIS,
        devices=self.devices)

  def p_train_step(self, learning_rate_fn: optax.Schedule):
    """`train_on_device_data` pmapped over the devices, the state donated."""
    return jax.pmap(
        functools.partial(train_on_device_data, config=self.config,
                          info=self.info, learning_rate_fn=learning_rate_fn),
        axis_name=AXIS, devices=self.devices, donate_argnums=(0,))

  def eval_batches(self, split: data.Split) -> list:
    """The split padded into device batches, placed on the devices once."""
    return [shard(batch, self.devices) for batch in data.padded_eval_batches(
        split, self.config.eval_batch_size, len(self.devices))]

  def abstract_state(self) -> TrainState:
    """The state's structure, shapes and dtypes, without computing it."""
    return jax.eval_shape(
        lambda rng: create_train_state(self.config, self.model, rng,
                                       self.info.image_shape,
                                       optax.constant_schedule(0.0)),
        jax.random.key(0))


def _count_params(params) -> int:
  return sum(x.size for x in jax.tree_util.tree_leaves(params))


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       devices=None) -> dict:
  """Trains config's model in workdir (resuming what is there); returns the
  final summary, also written to WORKDIR/summary.json."""
  start_time = time.time()
  # Everything that can fail on bad input runs before the workdir is touched.
  experiment = Experiment(config, devices)
  devices, info = experiment.devices, experiment.info
  checkpoints.check_workdir_config(config, workdir)
  train_split, validation = data.train_validation_split(
      data.load_split(config, config.train_split), config.validation_size)
  epoch_steps = steps_per_epoch(config, len(train_split))
  total_steps = total_train_steps(config, len(train_split))
  learning_rate_fn = create_learning_rate_fn(config, epoch_steps, total_steps)
  eval_every = config.eval_every_steps if config.eval_every_steps > 0 else epoch_steps
  checkpoint_every = (config.checkpoint_every_steps
                      if config.checkpoint_every_steps > 0 else eval_every)

  os.makedirs(workdir, exist_ok=True)
  checkpoints.save_workdir_config(config, workdir)
  store = checkpoints.CheckpointStore(workdir, config.keep_checkpoints)
  rng = jax.random.key(config.seed)
  init_rng, data_rng = jax.random.split(rng)
  state = create_train_state(config, experiment.model, init_rng,
                             info.image_shape, learning_rate_fn)
  if (latest := store.latest_step()) is not None:
    state = store.restore(latest, state)
    print(f'Resumed from {store.directory} at step {latest}.', flush=True)
  start_step = int(state.step)
  num_params = _count_params(state.params)

  p_train = experiment.p_train_step(learning_rate_fn)
  state = replicate(state, devices)
  train_data = replicate({'image': train_split.images,
                          'label': train_split.labels}, devices)
  data_keys = replicate(data_rng, devices)
  validation_batches = experiment.eval_batches(validation)

  writer = MetricsWriter(workdir)
  progress = Progress(total_steps, epoch_steps, config.batch_size, start_step)
  # Only the paper's network has a δ; the baselines ignore config.dilation.
  dilation = (f', δ={config.dilation}' if config.model == 'dilated_net'
              else '')
  print(f'Training {config.model} ({num_params:,} params{dilation}) '
        f'on {config.dataset}: {len(train_split)} train / {len(validation)} '
        f'validation examples, {total_steps} steps of {config.batch_size} on '
        f'{len(devices)} {devices[0].platform} device(s).', flush=True)
  train_metrics = []
  try:
    for step in range(start_step + 1, total_steps + 1):
      if train_metrics:
        # At most two steps in flight: enough to hide dispatch, and a bounded
        # queue (see `evaluate`).
        jax.block_until_ready(train_metrics[-1])
      state, metrics = p_train(state, train_data, data_keys)
      train_metrics.append(metrics)
      if step % config.log_every_steps == 0 or step == total_steps:
        host = [unreplicate(m) for m in train_metrics]
        summary = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
        summary['images_per_sec'] = progress.update(step, summary)
        summary['epoch'] = step / epoch_steps
        writer.write(step, 'train', summary)
        train_metrics = []
      evaluate_now = step % eval_every == 0 or step == total_steps
      if evaluate_now or step % checkpoint_every == 0:
        paused = progress.pause()
        metrics = None
        if evaluate_now:
          result = evaluate(experiment.p_eval_step, state, validation_batches)
          metrics = {checkpoints.BEST_METRIC: result['accuracy'],
                     'validation_loss': result['loss']}
          writer.write(step, 'validation',
                       {'accuracy': result['accuracy'], 'loss': result['loss'],
                        'epoch': step / epoch_steps})
          print(f'  validation: accuracy {result["accuracy"]:.4f} '
                f'loss {result["loss"]:.4f} ({result["num_examples"]} examples)',
                flush=True)
        store.save(step, unreplicate(state), metrics)
        progress.resume(paused)
  finally:
    store.close()
    writer.close()

  train_seconds = time.time() - start_time
  test = evaluate_checkpoint(config, workdir, split=config.test_split,
                             experiment=experiment)
  summary = {
      'test_accuracy': test['accuracy'], 'test_loss': test['loss'],
      'test_split': config.test_split, 'best_step': test['step'],
      'final_step': total_steps, 'num_params': num_params,
      'total_macs': model_summary.summarize(
          experiment.model, info.image_shape)['total_macs'],
      'steps_per_epoch': epoch_steps,
      'wall_time_sec': time.time() - start_time,
      'train_wall_time_sec': train_seconds,
      'devices': f'{len(devices)} x {devices[0].device_kind}',
  }
  checkpoints.write_json_atomic(os.path.join(workdir, 'summary.json'), summary)
  print(f'Done in {format_duration(summary["wall_time_sec"])}: test accuracy '
        f'{test["accuracy"]:.4f} on {test["num_examples"]} {config.test_split} '
        f'examples (checkpoint of step {test["step"]}, best on validation), '
        f'{num_params:,} params.', flush=True)
  return summary


def restore_state(config: ml_collections.ConfigDict, workdir: str,
                  step: int | None = None, experiment: Experiment | None = None):
  """The state saved in workdir at `step` (default: best on validation).

  Where training kept an EMA of the weights, the state holds the EMA: what
  validation selected and what evaluation uses.
  """
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise FlaxdilError(
        f'no checkpoints in {workdir!r}. Fix: train first with '
        f'--workdir={workdir}, or point --workdir at a training workdir.')
  checkpoints.check_workdir_config(config, workdir)
  experiment = experiment or Experiment(config)
  store = checkpoints.CheckpointStore(workdir, create=False)
  try:
    step = store.best_step() if step is None else step
    if step is None:
      raise FlaxdilError(f'{store.directory} holds no finished checkpoint; '
                         'train longer or pick another --workdir.')
    # Evaluation needs no optimizer state, so the training optimizer (which
    # may differ from this config's) does not have to be known.
    abstract = experiment.abstract_state()
    if abstract.ema is not None:
      variables = store.restore(step, {'ema': abstract.ema}, partial=True)['ema']
    else:
      variables = store.restore(
          step, {'params': abstract.params, 'batch_stats': abstract.batch_stats},
          partial=True)
  finally:
    store.close()
  state = TrainState.create(apply_fn=experiment.model.apply, tx=optax.identity(),
                            **variables)
  return state, step, experiment


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str,
                        split: str | None = None, step: int | None = None,
                        experiment: Experiment | None = None) -> dict:
  """Evaluates a saved checkpoint on a whole split; writes eval_SPLIT.json."""
  split = split or config.test_split
  state, step, experiment = restore_state(config, workdir, step, experiment)
  examples = data.load_split(config, split)
  start = time.time()
  result = evaluate(experiment.p_eval_step,
                    replicate(state, experiment.devices),
                    experiment.eval_batches(examples))
  result.update({'step': int(step), 'split': split, 'dataset': config.dataset,
                 'eval_seconds': time.time() - start})
  checkpoints.write_json_atomic(os.path.join(workdir, f'eval_{split}.json'),
                                result)
  return result
