"""Reading each step's rows on the host, on a loader's threads: for data of
any size (config.input_pipeline='stream').

A step's global batch is the one the device pipeline gathers (the same
indices, from batches.BatchOrder); a process reads only the rows at its
`positions` of each global batch (flat, in that order: shaping them for the
devices is training's job), and the step augments them on the device with
keys of their global positions, so the batches are bitwise those of the
device pipeline. Grain runs the reading on `threads` threads and keeps
`prefetch` steps ready; the order is a function of (key, step) alone, so a
resume needs no iterator state. Evaluation reads each padded, masked global
batch the same way.
"""

from __future__ import annotations

from typing import Callable, Iterator

import grain
import numpy as np

from flaxdil.data import images as image_ops
from flaxdil.data.batches import BatchOrder
from flaxdil.data.records import RecordReader


def _loader(read: Callable[[int], dict], count: int, threads: int,
            prefetch: int) -> Iterator[dict]:
  """read(0), read(1), ... read(count - 1), in order, computed ahead on
  `threads` threads, at most `prefetch` ahead."""
  dataset = grain.MapDataset.range(count).map(read)
  return iter(dataset.to_iter_dataset(grain.ReadOptions(
      num_threads=threads, prefetch_buffer_size=prefetch)))


def train_batches(reader: RecordReader, kept: np.ndarray, order: BatchOrder,
                  positions: np.ndarray, first_step: int, last_step: int,
                  threads: int, prefetch: int,
                  crop: tuple[int, int] | None = None,
                  flips: bool = False) -> Iterator[dict]:
  """The rows at `positions` of the global batches of steps first_step ..
  last_step - 1 (0-based, state.step's), each {'image': uint8 (rows, H, W,
  C), 'label': int32 (rows,)}, and 'flip' (bool (rows,): the order's
  alternating flips) where `flips`.

  Args:
    kept: the split's indices training reads (the hold-out left out), which
      the batch order's indices select from.
    order: the batch order over `kept`.
    positions: the positions in the global batch this process reads.
    crop: (image size, seed) where images vary in size (a random resized
      crop per row, from (seed, step, position)).
  """

  def read(i: int) -> dict:
    step = first_step + i
    rows = kept[order.indices(step)[positions]]
    fixed = None
    if crop is not None:
      size, seed = crop
      fixed = lambda image, j: image_ops.random_resized_crop(
          image, size, seed, step, int(positions[j]))
    pictures, labels = reader.read(rows, fixed)
    rows = {'image': pictures, 'label': labels}
    if flips:
      rows['flip'] = order.flips(step)[positions]
    return rows

  return _loader(read, last_step - first_step, threads, prefetch)


def eval_batches(reader: RecordReader, indices: np.ndarray,
                 global_batch_size: int, positions: np.ndarray, image_shape,
                 threads: int, prefetch: int, crop_size: int | None = None
                 ) -> Iterator[dict]:
  """The rows at `positions` of each padded global batch over `indices`
  (in order), with a mask: {'image', 'label', 'mask'}, flat. Images of
  image_shape (after the centre crop to crop_size where images vary in
  size); padding is zeros, masked."""
  count = -(-len(indices) // global_batch_size)
  fixed = (None if crop_size is None else
           lambda image, j: image_ops.centre_crop(image, crop_size))

  def read(b: int) -> dict:
    wanted = b * global_batch_size + positions
    real = wanted < len(indices)
    image = np.zeros((len(wanted),) + tuple(image_shape), np.uint8)
    label = np.zeros((len(wanted),), np.int32)
    if real.any():  # The last batch may leave a process only padding.
      image[real], label[real] = reader.read(indices[wanted[real]], fixed)
    return {'image': image, 'label': label, 'mask': real}

  return _loader(read, count, threads, prefetch)
