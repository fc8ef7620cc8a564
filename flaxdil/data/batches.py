"""Which examples form each batch: the training order (a pure function of
the key and the step) and the padded, masked evaluation batches.
"""

from __future__ import annotations

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
  order = jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)
  return jax.lax.dynamic_slice(order, (position * batch_size,), (batch_size,))


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
