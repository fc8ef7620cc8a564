"""The pure computation of training: keys, state, schedule and steps (the
optimizer: flaxdil.training.optimizers).

The one train step is a pure function (state, batch, augment_key) →
(state, metrics) written against the axis name AXIS: under
`jax.pmap(axis_name=AXIS)` each device computes its shard, gradients and
metrics are averaged with `lax.pmean`, and BatchNorm statistics are global
because the model's BatchNorm layers share the axis name. `train_steps`
runs K of them in one program (a lax.scan), for either input pipeline.
Nothing here knows about devices, files or the loop.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax
from flax.training import train_state
from jax import lax

from flaxdil import models
from flaxdil.data import augment
from flaxdil.data.source import DatasetInfo
from flaxdil.training import optimizers

AXIS = 'batch'


class RunKeys(NamedTuple):
  """A run's randomness, split once from its seed, each part named for its
  one use."""
  init: jax.Array      # The parameters' initialisation.
  order: jax.Array     # The batch order (flaxdil.data.batches.BatchOrder).
  augment: jax.Array   # Each example's augmentation, with (step, position).


def run_keys(seed: int) -> RunKeys:
  init, data = jax.random.split(jax.random.key(seed))
  order, augment_key = jax.random.split(data)
  return RunKeys(init, order, augment_key)


class TrainState(train_state.TrainState):
  batch_stats: Any
  # With config.ema_decay > 0: {'params', 'batch_stats'} averaged over the
  # steps; evaluation and checkpoint selection use it. None otherwise.
  ema: Any = None


def eval_variables(state: TrainState) -> dict:
  """The variables that evaluation uses: the EMA where there is one."""
  return (state.ema if state.ema is not None
          else {'params': state.params, 'batch_stats': state.batch_stats})


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


def create_model(config: ml_collections.ConfigDict, info: DatasetInfo):
  """config's network for info's images (BatchNorm across the pmap axis)."""
  return models.create_model(config, info.num_classes, axis_name=AXIS,
                             input_size=info.image_shape[0])


def create_train_state(config: ml_collections.ConfigDict, model, rng,
                       image_shape, learning_rate_fn) -> TrainState:
  """Initialises parameters and optimizer state (on the default device)."""
  tx = optimizers.create(config, learning_rate_fn)

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


def inference_state(model, variables: dict) -> TrainState:
  """A state without optimizer holding `variables` ({'params',
  'batch_stats'}): what evaluation, export and predict take."""
  return TrainState.create(apply_fn=model.apply, tx=optax.identity(),
                           **variables)


def abstract_train_state(config: ml_collections.ConfigDict, model,
                         image_shape) -> TrainState:
  """The state's structure, shapes and dtypes, without computing it."""
  return jax.eval_shape(
      lambda rng: create_train_state(config, model, rng, image_shape,
                                     optax.constant_schedule(0.0)),
      jax.random.key(0))


# --- Steps ------------------------------------------------------------------


def cross_entropy(logits, labels, label_smoothing: float = 0.0):
  targets = optax.smooth_labels(
      jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
  return optax.softmax_cross_entropy(logits, targets)


def train_step(state: TrainState, batch, augment_key, *,
               config: ml_collections.ConfigDict, info: DatasetInfo,
               early_size: int | None = None):
  """One optimizer step on this device's rows of the step's global batch;
  call under pmap(AXIS).

  Args:
    batch: {'image': uint8 (B, H, W, C), 'label': int32 (B,)}, this
      device's B rows of the global batch.
    augment_key: the run's augmentation key (RunKeys.augment). Each row is
      augmented with a key of (augment_key, step, its global position):
      the same augmentation on any number of devices and after a resume.
    early_size: None, or config.early_size while its epochs last.

  Returns:
    (the next state, {'loss', 'accuracy', 'nonfinite'} averaged over the
    devices). The learning rate is the schedule's inside the optimizer
    (state.tx); the host logs it.
  """
  keys = example_keys(augment_key, state.step,
                      _positions(batch['label'].shape[0]))
  images = batch['image']
  if 'flip' in batch:
    # config.alternating_flip: the order's flips, on the uint8 batch before
    # the crop (not in place of augment's coin: that form compiled
    # differently inside lax.scan, and K steps a dispatch then differed
    # from one in the last bits).
    images = jnp.where(batch['flip'][:, None, None, None], images[:, :, ::-1],
                       images)
  images = augment.augment(images, keys, config.crop_padding,
                           config.random_flip and 'flip' not in batch,
                           early_size, config.early_mode)
  images = augment.normalize(images, info.mean, info.std)
  if config.cutout:
    images = augment.cutout(images, keys, config.cutout)

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


def test_time_augmentation(config) -> dict:
  """predict's test-time augmentation arguments, from config."""
  return {'test_time_flip': bool(config.test_time_flip),
          'test_time_shift': int(config.test_time_shift)}


def predict(state: TrainState, images, *, info: DatasetInfo,
            test_time_flip: bool = False, test_time_shift: int = 0):
  """uint8 images → the logits evaluation classifies by (with the EMA where
  there is one).

  test_time_flip: the mean of the logits of each image and its mirror image.
  test_time_shift: S > 0 weighs those 1/2 and those of the image translated
    S pixels up-left and down-right 1/4 each (augment.translations).
  """
  images = augment.normalize(images, info.mean, info.std)
  variables = eval_variables(state)
  forward = lambda images: state.apply_fn(variables, images, train=False)
  views = lambda x: ((forward(x) + forward(x[:, :, ::-1])) / 2
                     if test_time_flip else forward(x))
  logits = views(images)
  if test_time_shift:
    up_left, down_right = augment.translations(images, test_time_shift)
    logits = logits / 2 + (views(up_left) + views(down_right)) / 4
  return logits


def eval_step(state: TrainState, batch, *, info: DatasetInfo, **augmentation):
  """Summed loss and correct predictions over the unmasked examples
  (augmentation: predict's test-time arguments)."""
  logits = predict(state, batch['image'], info=info, **augmentation)
  mask = batch['mask'].astype(jnp.float32)
  return lax.psum({
      'loss_sum': jnp.sum(cross_entropy(logits, batch['label']) * mask),
      'correct': jnp.sum((jnp.argmax(logits, -1) == batch['label']) * mask),
      'count': jnp.sum(mask),
  }, AXIS)


def example_keys(augment_key, step, positions) -> jax.Array:
  """The augmentation keys of the rows at `positions` of step `step`'s
  global batch: one per row, of (augment_key, step, position) only."""
  step_key = jax.random.fold_in(augment_key, step)
  return jax.vmap(jax.random.fold_in, (None, 0))(step_key, positions)


def _positions(per_device: int) -> jax.Array:
  """The global batch positions of this device's rows."""
  return lax.axis_index(AXIS) * per_device + jnp.arange(per_device)


def gather_batch(resident, indices: jax.Array) -> dict:
  """This device's rows of a step, gathered from the training split it
  holds (the 'device' input pipeline): uint8 images and labels at
  `indices`."""
  return {'image': resident['image'][indices],
          'label': resident['label'][indices]}


def train_steps(state: TrainState, step_inputs, augment_key, resident=None,
                *, config: ml_collections.ConfigDict, info: DatasetInfo,
                early_size: int | None = None):
  """`train_step` over the leading axis of `step_inputs` (one entry per
  step), in one program: a lax.scan, or for one step the step itself.

  Args:
    step_inputs: per step, this device's rows {'image', 'label'} (read on
      the host: the 'stream' pipeline), or with `resident` their indices
      {'index'} into it; and {'flip'} under config.alternating_flip.
    resident: None, or the whole training split held on this device
      ({'image', 'label'}), from which `gather_batch` takes each step's rows.

  Returns:
    (the state after the last step, each step's metrics stacked).
  """
  def one(state, inputs):
    batch = dict(inputs)
    if resident is not None:
      # The rows at this step's indices take the indices' place; 'flip',
      # where present, passes through.
      batch.update(gather_batch(resident, batch.pop('index')))
    return train_step(state, batch, augment_key, config=config, info=info,
                      early_size=early_size)

  num_steps = jax.tree_util.tree_leaves(step_inputs)[0].shape[0]
  if num_steps == 1:
    # Not a scan of length 1: XLA:CPU compiles some convolutions (lax's)
    # differently inside a loop, and one step a dispatch would then differ
    # in the last bits from a step called alone.
    state, metrics = one(state, jax.tree_util.tree_map(lambda x: x[0],
                                                       step_inputs))
    return state, jax.tree_util.tree_map(lambda x: x[None], metrics)
  return lax.scan(one, state, step_inputs)
