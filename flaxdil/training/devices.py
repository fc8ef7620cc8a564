"""Where the computation runs: the devices, arrays placed on them, and a
model's steps pmapped over them.

With several processes (flaxdil.distributed) the steps are pmapped over the
devices of all processes, and each process places arrays on its own devices
only: a pmapped function takes from each process the slices of its local
devices, shaped (local devices, ...), and returns the same.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from flaxdil import config_check, data, models, steps
from flaxdil.errors import ConfigError


def check_devices(config: ml_collections.ConfigDict, devices) -> None:
  for field in ('batch_size', 'eval_batch_size'):
    if config[field] % len(devices):
      raise ConfigError(
          f'config.{field}={config[field]} is not divisible by the '
          f'{len(devices)} devices ({devices[0].platform}); use a multiple of '
          f'{len(devices)}, e.g. --config.{field}='
          f'{max(1, config[field] // len(devices)) * len(devices)}.')


def _sharding(devices) -> jax.sharding.Sharding:
  # Named like the pmap axis: pmap's outputs carry exactly this sharding, so
  # arrays placed here and arrays returned by a step hit the same compiled
  # program (another axis name would compile every step twice).
  mesh = jax.sharding.Mesh(np.array(devices), (steps.AXIS,))
  return jax.NamedSharding(mesh, jax.P(steps.AXIS))


def shard(tree, devices):
  """Places arrays shaped (len(devices), ...) one slice per device (devices
  of this process)."""
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


class PmappedModel:
  """A config's model, its dataset's metadata and its steps pmapped over
  the devices (by default all devices of all processes).

  `devices` are those of the pmap axis, in its order; `local_devices` those
  of this process, which it feeds (all of them with one process).
  eval_step is built once (pmap compiles it on first call); the train step
  depends on the run's learning-rate schedule, so `pmap_train_step` builds
  it for one.
  """

  def __init__(self, config: ml_collections.ConfigDict, devices=None):
    config_check.validate(config)
    self.config = config
    self.devices = list(devices or jax.devices())
    self.local_devices = [d for d in self.devices
                          if d.process_index == jax.process_index()]
    check_devices(config, self.devices)
    self.info = data.dataset_info(config)
    self.model = models.create_model(config, self.info.num_classes,
                                     axis_name=steps.AXIS)
    self.eval_step = jax.pmap(
        functools.partial(steps.eval_step, info=self.info,
                          test_time_flip=config.test_time_flip),
        axis_name=steps.AXIS, devices=self.devices)

  def pmap_train_step(self, learning_rate_fn: optax.Schedule):
    """`steps.train_on_device_data` pmapped, the state donated."""
    return jax.pmap(
        functools.partial(steps.train_on_device_data, config=self.config,
                          info=self.info, learning_rate_fn=learning_rate_fn),
        axis_name=steps.AXIS, devices=self.devices, donate_argnums=(0,))

  def eval_batches(self, split: data.Split) -> list:
    """The split padded into global batches; this process's rows of each
    (those of its devices) placed on its devices once."""
    local_rows = [i for i, d in enumerate(self.devices)
                  if d in self.local_devices]
    return [shard(jax.tree_util.tree_map(lambda x: x[local_rows], batch),
                  self.local_devices)
            for batch in data.padded_eval_batches(
                split, self.config.eval_batch_size, len(self.devices))]

  def describe_devices(self) -> str:
    kind = self.devices[0].device_kind
    if jax.process_count() == 1:
      return f'{len(self.devices)} x {kind}'
    return (f'{len(self.devices)} x {kind} in {jax.process_count()} '
            'processes')

  def abstract_state(self) -> steps.TrainState:
    """The state's structure, shapes and dtypes, without computing it."""
    return jax.eval_shape(
        lambda rng: steps.create_train_state(self.config, self.model, rng,
                                             self.info.image_shape,
                                             optax.constant_schedule(0.0)),
        jax.random.key(0))
