"""Which examples form each batch: the training order (a pure function of
the key and the step, computed once per epoch on the host, for either
input pipeline) and the padded, masked evaluation batches.
"""

from __future__ import annotations

import threading

import jax
import numpy as np

from flaxdil.data.source import Split


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full global batches per epoch: the one definition of an epoch's length
  (schedule, logging and the batch order). At least one (a config rule: the
  batch is not larger than the training examples)."""
  return num_examples // batch_size


def epoch_order(key: jax.Array, epoch, num_examples: int) -> jax.Array:
  """The permutation of the training examples that epoch `epoch` reads."""
  return jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)


class BatchOrder:
  """The indices of each step's global batch: a fresh permutation each
  epoch, of which step `position` reads rows position * batch_size onwards.

  A pure function of (key, step), so a resumed run sees the same data
  order. The permutation is computed once per epoch, on the host's CPU
  with JAX (the same bits on any backend): a permutation of the whole
  split in every step cost 26.5 ms a step on CIFAR-10 (45,000 rows), more
  than a small model's step. The last num_examples % batch_size examples
  of each epoch's permutation are skipped (a different remainder every
  epoch). Safe to call from several threads (a loader's).
  """

  def __init__(self, key: jax.Array, num_examples: int, batch_size: int):
    self._cpu = jax.local_devices(backend='cpu')[0]
    self._key = jax.device_put(key, self._cpu)
    self.num_examples, self.batch_size = num_examples, batch_size
    self.epoch_steps = steps_per_epoch(num_examples, batch_size)
    self._orders = {}  # The epochs in use: at most two at a time.
    self._first_flips = None  # flips' draw, made where first asked for.
    self._lock = threading.Lock()
    # On the CPU because the key is there (jit runs where its inputs are).
    self._permute = jax.jit(epoch_order, static_argnums=2)

  def indices(self, step: int) -> np.ndarray:
    """The global batch of `step` (0-based: the step's state.step), int32."""
    epoch, position = divmod(step, self.epoch_steps)
    with self._lock:
      if epoch not in self._orders:
        self._orders = {e: o for e, o in self._orders.items() if e >= epoch - 1}
        self._orders[epoch] = np.asarray(
            self._permute(self._key, epoch, self.num_examples))
      order = self._orders[epoch]
    start = position * self.batch_size
    return order[start:start + self.batch_size]

  def flips(self, step: int) -> np.ndarray:
    """Whether each example of `step`'s global batch is mirrored under
    config.alternating_flip: a random bit per example (one draw for the
    run, from the order's key), inverted in odd epochs, so that every
    example is seen both ways in any two consecutive epochs."""
    with self._lock:
      if self._first_flips is None:
        # fold_in's data is outside the epochs' range (epoch_order).
        self._first_flips = np.asarray(jax.jit(
            lambda key: jax.random.bernoulli(jax.random.fold_in(
                key, 2 ** 31 - 1), shape=(self.num_examples,)))(self._key))
    return self._first_flips[self.indices(step)] ^ bool(
        (step // self.epoch_steps) % 2)


def padded_eval_batches(split: Split, global_batch_size: int):
  """Yields global batches {'image', 'label', 'mask'} of the whole split.

  The last batch is padded with zeros and mask=False: nothing is dropped,
  and padding never counts.
  """
  n = len(split)
  for start in range(0, n, global_batch_size):
    stop = min(start + global_batch_size, n)
    images = np.zeros((global_batch_size,) + split.images.shape[1:], np.uint8)
    labels = np.zeros((global_batch_size,), np.int32)
    mask = np.zeros((global_batch_size,), bool)
    images[:stop - start] = split.images[start:stop]
    labels[:stop - start] = split.labels[start:stop]
    mask[:stop - start] = True
    yield {'image': images, 'label': labels, 'mask': mask}
