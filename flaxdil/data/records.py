"""A split's records by index, decoded on the calling thread: the one
reader of prepared data, for whole splits (flaxdil.data.source) and for
each step's rows (flaxdil.data.stream) alike.

An undecodable record of the training split (the validation hold-out
included) is replaced by the next decodable record after it (in the same
place of the batch, so the run stays the same on any layout) and counted;
in an evaluation split it is an error (DataError): every example counts
once.
"""

from __future__ import annotations

import threading
from typing import Callable

import numpy as np

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
