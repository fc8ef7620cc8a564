"""The pure computation of training: state, optimizer, schedule and steps.

The steps are pure functions of (state, batch, key) written against the
axis name AXIS: under `jax.pmap(axis_name=AXIS)` each device computes its
shard, gradients and metrics are averaged with `lax.pmean`, and BatchNorm
statistics are global because the model's BatchNorm layers share the axis
name. Nothing here knows about devices, files or the loop.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import optax
from absl import logging
from flax.training import train_state
from jax import lax

from flaxdil.data import augment, batches
from flaxdil.data.source import DatasetInfo

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


def total_train_steps(config: ml_collections.ConfigDict,
                      epoch_steps: int) -> int:
  if config.num_train_steps > 0:
    return config.num_train_steps
  return int(math.ceil(config.num_epochs * epoch_steps))


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
  else:  # 'constant' (config.rules allows no other).
    after = optax.constant_schedule(peak)
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
               config: ml_collections.ConfigDict, info: DatasetInfo):
  """One optimizer step on this device's shard; call under pmap(AXIS).

  batch: {'image': uint8 (B, H, W, C), 'label': int32 (B,)};
  augment_keys: one PRNG key per example. The learning rate is the
  schedule's inside the optimizer (state.tx); the host logs it.
  """
  images = augment.augment(batch['image'], augment_keys, config.crop_padding,
                           config.random_flip)
  images = augment.normalize(images, info.mean, info.std)

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
  # The same on every device: the loss and gradients are averaged already.
  finite = jnp.isfinite(metrics['loss']) & jnp.all(jnp.array(
      [jnp.all(jnp.isfinite(g)) for g in jax.tree_util.tree_leaves(grads)]))
  metrics['nonfinite'] = 1.0 - finite.astype(jnp.float32)
  new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
  if state.ema is not None:
    new_state = new_state.replace(ema=update_ema(
        state.ema, new_state.params, batch_stats, state.step,
        config.ema_decay))
  if config.skip_nonfinite_steps:
    # Keep everything but the step count, so the next step reads the next
    # batch rather than retrying this one forever.
    kept = jax.tree_util.tree_map(lambda new, old: jnp.where(finite, new, old),
                                  new_state, state)
    new_state = kept.replace(step=new_state.step)
  return new_state, metrics


def predict(state: TrainState, images, *, info: DatasetInfo,
            test_time_flip: bool = False):
  """uint8 images → the logits evaluation classifies by (with the EMA where
  there is one).

  test_time_flip: the mean of the logits of each image and its mirror image.
  """
  images = augment.normalize(images, info.mean, info.std)
  variables = eval_variables(state)
  forward = lambda images: state.apply_fn(variables, images, train=False)
  logits = forward(images)
  if test_time_flip:
    logits = (logits + forward(images[:, :, ::-1])) / 2
  return logits


def eval_step(state: TrainState, batch, *, info: DatasetInfo,
              test_time_flip: bool = False):
  """Summed loss and correct predictions over the unmasked examples."""
  logits = predict(state, batch['image'], info=info,
                   test_time_flip=test_time_flip)
  mask = batch['mask'].astype(jnp.float32)
  return lax.psum({
      'loss_sum': jnp.sum(cross_entropy(logits, batch['label']) * mask),
      'correct': jnp.sum((jnp.argmax(logits, -1) == batch['label']) * mask),
      'count': jnp.sum(mask),
  }, AXIS)


def data_keys(key: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(order key, augmentation key) of a run's data key: the batch order's
  key (also the host's, flaxdil.training.inputs) and the augmentation's."""
  order_key, augment_key = jax.random.split(key)
  return order_key, augment_key


def _positions(per_device: int) -> jax.Array:
  """The global batch positions of this device's rows."""
  return lax.axis_index(AXIS) * per_device + jnp.arange(per_device)


def train_on_device_data(state: TrainState, train_data, key, *,
                         config: ml_collections.ConfigDict,
                         info: DatasetInfo):
  """Gathers this device's share of the step's batch, then `train_on_batch`.

  train_data is the whole training split, uint8, on this device (the
  'device' input pipeline). The batch depends on (key, step, example
  position) only, so data order is the same on any number of devices and
  after a resume.
  """
  per_device = config.batch_size // lax.axis_size(AXIS)
  order_key, _ = data_keys(key)
  indices = batches.epoch_batch_indices(
      order_key, state.step, train_data['label'].shape[0], config.batch_size)
  local = indices[_positions(per_device)]
  batch = {'image': train_data['image'][local],
           'label': train_data['label'][local]}
  return train_on_batch(state, batch, key, config=config, info=info)


def train_on_batch(state: TrainState, batch, key, *,
                   config: ml_collections.ConfigDict, info: DatasetInfo):
  """`train_step` on this device's rows of the step's global batch
  (gathered on the device, or read on the host by the 'stream' input
  pipeline), each augmented with a key of (key, step, its global position):
  the same augmentation on any number of devices and after a resume."""
  _, augment_key = data_keys(key)
  step_key = jax.random.fold_in(augment_key, state.step)
  augment_keys = jax.vmap(jax.random.fold_in, (None, 0))(
      step_key, _positions(batch['label'].shape[0]))
  return train_step(state, batch, augment_keys, config=config, info=info)


def train_steps_on_device_data(state: TrainState, train_data, key, *,
                               config: ml_collections.ConfigDict,
                               info: DatasetInfo, num_steps: int):
  """`num_steps` steps of `train_on_device_data` in one program (lax.scan):
  the same computation step by step, each step's metrics stacked."""
  def one(state, _):
    return train_on_device_data(state, train_data, key, config=config,
                                info=info)
  return lax.scan(one, state, None, length=num_steps)


def train_steps_on_batches(state: TrainState, step_batches, key, *,
                           config: ml_collections.ConfigDict,
                           info: DatasetInfo):
  """`train_on_batch` over the leading axis of `step_batches` (one batch per
  step), in one program (lax.scan); each step's metrics stacked."""
  def one(state, batch):
    return train_on_batch(state, batch, key, config=config, info=info)
  return lax.scan(one, state, step_batches)
