"""Which examples form each batch: the training order (a pure function of
the key and the step, the same on the devices and on the host) and the
padded, masked evaluation batches.
"""

from __future__ import annotations

import threading

import jax
import jax.numpy as jnp
import numpy as np

from flaxdil.data.source import Split


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full global batches per epoch: the one definition, used by the host
  (schedule, logging) and by the device (batch order) alike. At least one
  (a config rule: the batch is not larger than the training examples)."""
  return num_examples // batch_size


def epoch_batch_indices(key: jax.Array, step: jax.Array, num_examples: int,
                        batch_size: int) -> jax.Array:
  """Indices of the global batch for `step`: a fresh permutation each epoch.

  A pure function of (key, step), so a resumed run sees the same data order.
  The last num_examples % batch_size examples of each epoch's permutation are
  skipped (a different remainder every epoch).
  """
  epoch, position = jnp.divmod(step, steps_per_epoch(num_examples, batch_size))
  order = epoch_order(key, epoch, num_examples)
  return jax.lax.dynamic_slice(order, (position * batch_size,), (batch_size,))


def epoch_order(key: jax.Array, epoch, num_examples: int) -> jax.Array:
  """The permutation of the training examples that epoch `epoch` reads."""
  return jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)


class HostBatchOrder:
  """epoch_batch_indices on the host, for a pipeline that reads each step's
  rows there: the same permutations (computed by JAX on the CPU, once per
  epoch), so the same batches as on the devices. Safe to call from several
  threads (a loader's)."""

  def __init__(self, key: jax.Array, num_examples: int, batch_size: int):
    self._cpu = jax.local_devices(backend='cpu')[0]
    self._key = jax.device_put(key, self._cpu)
    self._num_examples, self._batch_size = num_examples, batch_size
    self._epoch_steps = steps_per_epoch(num_examples, batch_size)
    self._orders = {}  # The epochs in use: at most two at a time.
    self._lock = threading.Lock()
    # On the CPU because the key is there (jit runs where its inputs are).
    self._permute = jax.jit(epoch_order, static_argnums=2)

  def indices(self, step: int) -> np.ndarray:
    """The global batch of `step` (0-based: the step's state.step)."""
    epoch, position = divmod(step, self._epoch_steps)
    with self._lock:
      if epoch not in self._orders:
        self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
        self._orders[epoch] = np.asarray(
            self._permute(self._key, epoch, self._num_examples))
      order = self._orders[epoch]
    start = position * self._batch_size
    return order[start:start + self._batch_size]


def padded_eval_batches(split: Split, global_batch_size: int,
                        num_devices: int):
  """Yields host batches shaped (devices, per_device, ...) with a mask.

  The last batch is padded with zeros and mask=False: nothing is dropped, and
  padding never counts.
  """
  per_device = global_batch_size // num_devices
  n = len(split)
  for start in range(0, n, global_batch_size):
    stop = min(start + global_batch_size, n)
    images = np.zeros((global_batch_size,) + split.images.shape[1:], np.uint8)
    labels = np.zeros((global_batch_size,), np.int32)
    mask = np.zeros((global_batch_size,), bool)
    images[:stop - start] = split.images[start:stop]
    labels[:stop - start] = split.labels[start:stop]
    mask[:stop - start] = True
    yield {k: v.reshape((num_devices, per_device) + v.shape[1:])
           for k, v in (('image', images), ('label', labels), ('mask', mask))}
