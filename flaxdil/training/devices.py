"""Where the computation runs: the devices of the pmap axis, this process's
share of them, and host arrays shaped for them and placed on them.

With several processes (flaxdil.distributed.processes) the steps are
pmapped over the devices of all processes, and each process places arrays
on its own devices only: a pmapped function takes from each process the
slices of its local devices, shaped (local devices, ...), and returns the
same. This module is the one place that knows that layout: data code reads
flat rows, and training shapes them here.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from flaxdil.training.steps import AXIS


def _sharding(devices) -> jax.sharding.Sharding:
  # Named like the pmap axis: pmap's outputs carry exactly this sharding, so
  # arrays placed here and arrays returned by a step hit the same compiled
  # program (another axis name would compile every step twice).
  mesh = jax.sharding.Mesh(np.array(devices), (AXIS,))
  return jax.NamedSharding(mesh, jax.P(AXIS))


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


@dataclasses.dataclass(frozen=True)
class Devices:
  """The devices of the pmap axis (`all`, in its order; by default every
  device of every process) and this process's, which it feeds (`local`:
  all of them with one process)."""
  all: tuple
  local: tuple

  @classmethod
  def of(cls, device_list=None) -> 'Devices':
    every = tuple(device_list or jax.devices())
    return cls(every, tuple(d for d in every
                            if d.process_index == jax.process_index()))

  def describe(self) -> str:
    kind = self.all[0].device_kind
    if jax.process_count() == 1:
      return f'{len(self.all)} x {kind}'
    return f'{len(self.all)} x {kind} in {jax.process_count()} processes'

  def local_positions(self, global_batch_size: int) -> np.ndarray:
    """The positions in a global batch of this process's devices' rows
    (each device takes global_batch_size / len(all) consecutive rows)."""
    per_device = global_batch_size // len(self.all)
    return np.concatenate([
        np.arange(r * per_device, (r + 1) * per_device)
        for r, d in enumerate(self.all) if d in self.local])

  def _by_device(self, rows: np.ndarray) -> np.ndarray:
    """Flat rows (as local_positions orders them) → (local devices, per
    device, ...)."""
    return rows.reshape((len(self.local), -1) + rows.shape[1:])

  def place(self, rows: dict):
    """This process's rows of a global batch (flat, as local_positions
    orders them), shaped (local devices, per device, ...) and placed."""
    return shard({k: self._by_device(v) for k, v in rows.items()},
                 self.local)

  def place_steps(self, steps_rows: list[dict]):
    """The rows of several steps, one block: shaped (local devices, steps,
    per device, ...) (the scan's axis after the devices') and placed."""
    return shard({k: np.stack([self._by_device(r[k]) for r in steps_rows], 1)
                  for k in steps_rows[0]}, self.local)

  def place_global(self, batch: dict):
    """A whole global batch on the host: this process's rows, placed."""
    positions = self.local_positions(len(next(iter(batch.values()))))
    return self.place({k: v[positions] for k, v in batch.items()})

  def replicate(self, tree):
    return replicate(tree, self.local)
