"""Where the computation runs: the devices, arrays placed on them, and a
model's steps pmapped over them.

With several processes (flaxdil.distributed.processes) the steps are
pmapped over the devices of all processes, and each process places arrays on
its own devices only: a pmapped function takes from each process the slices of its local
devices, shaped (local devices, ...), and returns the same.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from flaxdil import models
from flaxdil.config import rules
from flaxdil.data import batches
from flaxdil.data.source import Split
from flaxdil.training import steps


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
  """A checked config's model, its dataset's metadata and its steps pmapped
  over the devices (by default all devices of all processes).

  Building one checks the config for these devices and the dataset
  (flaxdil.config.rules.check_run) before anything is made.
  `devices` are those of the pmap axis, in its order; `local_devices` those
  of this process, which it feeds (all of them with one process). The
  steps are built once (pmap compiles them on their first call).
  """

  def __init__(self, config: ml_collections.ConfigDict, devices=None):
    self.config = config
    self.devices = list(devices or jax.devices())
    self.info = rules.check_run(config, self.devices)
    self.local_devices = [d for d in self.devices
                          if d.process_index == jax.process_index()]
    self.model = models.create_model(config, self.info.num_classes,
                                     axis_name=steps.AXIS,
                                     input_size=self.info.image_shape[0])
    self.eval_step = jax.pmap(
        functools.partial(steps.eval_step, info=self.info,
                          test_time_flip=config.test_time_flip),
        axis_name=steps.AXIS, devices=self.devices)
    # The train steps of both input pipelines, one step a call and
    # config.steps_per_dispatch a call (None for 1; metrics come back
    # stacked, (devices, steps)). Built here, compiled on first call: a run
    # calls those of its pipeline only. The state is donated: its buffers
    # are reused for the next state.
    pmap = functools.partial(jax.pmap, axis_name=steps.AXIS,
                             devices=self.devices, donate_argnums=(0,))
    bound = dict(config=config, info=self.info)
    blocks = config.steps_per_dispatch > 1
    self.train_step = pmap(functools.partial(steps.train_on_device_data,
                                             **bound))
    self.train_block = pmap(functools.partial(
        steps.train_steps_on_device_data, **bound,
        num_steps=config.steps_per_dispatch)) if blocks else None
    self.train_batch_step = pmap(functools.partial(steps.train_on_batch,
                                                   **bound))
    self.train_batch_block = pmap(functools.partial(
        steps.train_steps_on_batches, **bound)) if blocks else None

  @property
  def local_rows(self) -> list[int]:
    """The pmap positions of this process's devices."""
    return [i for i, d in enumerate(self.devices) if d in self.local_devices]

  def local_positions(self, global_batch_size: int) -> np.ndarray:
    """The positions in a global batch of this process's devices' rows."""
    per_device = global_batch_size // len(self.devices)
    return np.concatenate([np.arange(r * per_device, (r + 1) * per_device)
                           for r in self.local_rows])

  def eval_batches(self, split: Split) -> list:
    """The split padded into global batches; this process's rows of each
    (those of its devices) placed on its devices once."""
    local_rows = self.local_rows
    return [shard(jax.tree_util.tree_map(lambda x: x[local_rows], batch),
                  self.local_devices)
            for batch in batches.padded_eval_batches(
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
