"""Reading a split's records on the host, each step's rows only, on a
loader's threads: for data of any size (config.input_pipeline='stream').

A step's global batch is the one the device pipeline would gather
(batches.HostBatchOrder: the same indices from the same key); each process
reads only the rows of its own devices, shaped (local devices, per device,
...), and the step augments them on the device with keys of their global
positions, so the batches are bitwise those of the device pipeline. Grain
runs the reading on `threads` threads and keeps `prefetch` steps ready; the
order is a function of (seed, step) alone, so a resume needs no iterator
state. Evaluation reads each padded, masked global batch the same way.

An undecodable record of the training split (the validation hold-out
included) is replaced, in either pipeline, by the next decodable record
after it (in the same place of the batch, so the run stays the same on any
layout) and counted; in an evaluation split it is an error (DataError):
every example counts once.
"""

from __future__ import annotations

import threading
from typing import Callable, Iterator

import grain
import numpy as np

from flaxdil.data import images as image_ops
from flaxdil.data.batches import HostBatchOrder
from flaxdil.errors import DataError

# How far past an undecodable record to look for a decodable one.
_SUBSTITUTES = 100


class RecordReader:
  """Records of one split of a TFDS data source by index, decoded on the
  calling thread; counts what it read (and what it replaced)."""

  def __init__(self, data_source, split: str, training: bool):
    self._source = data_source
    self.split = split
    self._training = training
    self._lock = threading.Lock()
    self.reads = 0
    self.replaced: set[int] = set()

  def __len__(self) -> int:
    return len(self._source)

  def _decode(self, index: int) -> dict:
    try:
      return self._source[int(index)]
    except Exception as e:  # Whatever the decoder raises for bad bytes.
      return e

  def _one(self, index: int) -> dict:
    record = self._decode(index)
    if not isinstance(record, Exception):
      return record
    if not self._training:
      raise DataError(
          f'record {index} of split {self.split!r} cannot be decoded '
          f'({type(record).__name__}: {str(record)[:200]}). Every example of '
          'an evaluation split counts, so evaluation stops. Fix: repair or '
          'remove that record (prepare the dataset again), or evaluate a '
          'slice without it.') from None
    for offset in range(1, _SUBSTITUTES + 1):
      substitute = self._decode((index + offset) % len(self._source))
      if not isinstance(substitute, Exception):
        with self._lock:
          if index not in self.replaced:
            self.replaced.add(index)
            print(f'warning: record {index} of split {self.split!r} cannot '
                  f'be decoded ({type(record).__name__}); training reads the '
                  f'record {offset} after it in its place (counted in '
                  'summary.json: replaced_training_records).', flush=True)
        return substitute
    raise DataError(f'records {index} to {index + _SUBSTITUTES} of split '
                    f'{self.split!r} cannot be decoded: the prepared data is '
                    'damaged. Fix: prepare the dataset again.')

  def read(self, indices, fixed_size: Callable | None = None
           ) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images (n, H, W, C), int32 labels) of the records at
    `indices`; fixed_size(image, i) makes the i-th image the size the
    network sees where images vary in size."""
    records = [self._one(i) for i in indices]
    with self._lock:
      self.reads += len(records)
    pictures = [r['image'] if r['image'].ndim == 3 else r['image'][..., None]
                for r in records]
    if fixed_size is not None:
      pictures = [fixed_size(p, i) for i, p in enumerate(pictures)]
    return (np.stack(pictures).astype(np.uint8),
            np.array([r['label'] for r in records], np.int32))


def _loader(read: Callable[[int], dict], count: int, threads: int,
            prefetch: int) -> Iterator[dict]:
  """read(0), read(1), ... read(count - 1), in order, computed ahead on
  `threads` threads, at most `prefetch` ahead."""
  dataset = grain.MapDataset.range(count).map(read)
  return iter(dataset.to_iter_dataset(grain.ReadOptions(
      num_threads=threads, prefetch_buffer_size=prefetch)))


def train_batches(reader: RecordReader, kept: np.ndarray,
                  order: HostBatchOrder, local_positions: np.ndarray,
                  num_local_devices: int, first_step: int, last_step: int,
                  threads: int, prefetch: int,
                  crop: tuple[int, int] | None = None) -> Iterator[dict]:
  """This process's rows of the global batches of steps first_step..
  last_step - 1 (0-based, state.step's), each {'image', 'label'} shaped
  (local devices, per device, ...).

  kept: the split's indices training reads (the hold-out left out), which
  the batch order's indices select from; local_positions: the positions in
  the global batch of this process's devices' rows; crop: (image size,
  seed) where images vary in size (a random resized crop per row)."""

  def read(i: int) -> dict:
    step = first_step + i
    rows = kept[order.indices(step)[local_positions]]
    fixed = None
    if crop is not None:
      size, seed = crop
      fixed = lambda image, j: image_ops.random_resized_crop(
          image, size, seed, step, int(local_positions[j]))
    pictures, labels = reader.read(rows, fixed)
    return {'image': pictures.reshape((num_local_devices, -1)
                                      + pictures.shape[1:]),
            'label': labels.reshape(num_local_devices, -1)}

  return _loader(read, last_step - first_step, threads, prefetch)


def eval_batches(reader: RecordReader, indices: np.ndarray,
                 global_batch_size: int, local_positions: np.ndarray,
                 num_local_devices: int, image_shape, threads: int,
                 prefetch: int, crop_size: int | None = None
                 ) -> Iterator[dict]:
  """This process's rows of each padded global batch over `indices` (in
  order), with a mask, shaped (local devices, per device, ...): the rows at
  `local_positions` of each global batch; images of image_shape (after the
  centre crop to crop_size where images vary in size). Padding is zeros,
  masked."""
  count = -(-len(indices) // global_batch_size)
  fixed = (None if crop_size is None else
           lambda image, j: image_ops.centre_crop(image, crop_size))

  def read(b: int) -> dict:
    wanted = b * global_batch_size + local_positions
    real = wanted < len(indices)
    image = np.zeros((len(wanted),) + tuple(image_shape), np.uint8)
    label = np.zeros((len(wanted),), np.int32)
    if real.any():  # The last batch may leave a process only padding.
      image[real], label[real] = reader.read(indices[wanted[real]], fixed)
    shape = (num_local_devices, -1)
    return {'image': image.reshape(shape + image.shape[1:]),
            'label': label.reshape(shape), 'mask': real.reshape(shape)}

  return _loader(read, count, threads, prefetch)
