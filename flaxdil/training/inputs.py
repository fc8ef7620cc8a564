"""How data reaches the devices: the two input pipelines of
config.input_pipeline, for training and for evaluation.

  device  every device holds the whole decoded training split (uint8) and
          gathers each step's batch itself, inside the step
  stream  each process reads its devices' rows of each step on the host,
          on a loader's threads (flaxdil.data.stream), and places them

Both give bitwise the same batches and augmentation (the same indices from
the same key, augmented on the device with keys of global positions), so
the choice changes speed and memory, never a result.
"""

from __future__ import annotations

import os
import sys
from typing import Iterable

import jax
import ml_collections
import numpy as np

from flaxdil.data import source, stream
from flaxdil.data.batches import HostBatchOrder
from flaxdil.training import devices, steps
from flaxdil.training.devices import PmappedModel

# 'auto' keeps the training split on the devices where its decoded images
# take at most this share of one device's memory (a CPU's: the host's),
# leaving the rest to the model, its activations and the evaluation data.
DEVICE_SHARE = 0.25


def _memory_bytes(device) -> int:
  stats = device.memory_stats()  # None on a CPU.
  if stats and stats.get('bytes_limit'):
    return int(stats['bytes_limit'])
  return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def choose(config: ml_collections.ConfigDict, info: source.DatasetInfo,
           train_examples: int, device) -> tuple[str, str]:
  """('device' or 'stream', why): config.input_pipeline, 'auto' resolved."""
  if config.input_pipeline != 'auto':
    return config.input_pipeline, 'config.input_pipeline'
  if info.varying_size:
    return 'stream', f'{info.name} images vary in size'
  need, have = info.decoded_bytes(train_examples), _memory_bytes(device)
  where = (f'{need / 1e6:,.0f} MB of decoded training images against '
           f'{DEVICE_SHARE:.0%} of the {have / 2**30:.0f} GiB of '
           f'{"the host" if device.platform == "cpu" else "one device"}')
  return ('device', where) if need <= DEVICE_SHARE * have else ('stream',
                                                                where)


class TrainingData:
  """A run's training split and validation hold-out in one pipeline:
  decoded into memory ('device'), or opened to be read step by step
  ('stream'). Made before the workdir is touched (decoding is the slow part
  of set-up)."""

  def __init__(self, pmapped: PmappedModel, pipeline: str, reason: str,
               splits: tuple[source.Split, source.Split] | None = None):
    """splits: (training, validation) already in memory (benchmarks), for
    the device pipeline; by default the config's train_split is read."""
    config = pmapped.config
    self.pmapped, self.pipeline, self.reason = pmapped, pipeline, reason
    split = config.train_split
    self._reader = None if splits else stream.RecordReader(
        source.data_source(config, split), split, training=True)
    if pipeline == 'device':
      self.train_split, self.validation = splits or (
          source.train_validation_split(
              source.Split(*self._reader.read(range(len(self._reader)))),
              config.validation_size))
      self.num_train, self.num_validation = (len(self.train_split),
                                             len(self.validation))
      self._validation_batches = None
    else:
      self._kept, self._held_out = source.holdout(len(self._reader),
                                                  config.validation_size)
      # The hold-out's own reader of the training split (opened once; it
      # replaces undecodable records as decoding the whole split does), so
      # the training reader's counts are training's.
      self._validation_reader = stream.RecordReader(
          source.data_source(config, split), split, training=True)
      self.num_train, self.num_validation = (len(self._kept),
                                             len(self._held_out))

  @property
  def replaced_records(self) -> int:
    """Undecodable records of the training split replaced so far
    (flaxdil.data.stream), of those this process read: by training or by
    the hold-out's validation, as 'device' counts them when it decodes the
    whole split."""
    if not self._reader:
      return 0
    if self.pipeline == 'device':
      return len(self._reader.replaced)
    return len(self._reader.replaced | self._validation_reader.replaced)

  def training(self, data_rng, start_step: int, total_steps: int):
    """What runs the steps from start_step on."""
    if self.pipeline == 'device':
      return DeviceTraining(self.pmapped, self.train_split)
    return StreamTraining(self.pmapped, self._reader, self._kept, data_rng,
                          start_step, total_steps)

  def validation_batches(self) -> Iterable:
    """The hold-out's evaluation batches, placed: once ('device'), or read
    anew at every validation ('stream')."""
    if self.pipeline == 'device':
      if self._validation_batches is None:
        self._validation_batches = self.pmapped.eval_batches(self.validation)
      return self._validation_batches
    return eval_batches(self.pmapped, 'stream',
                        self.pmapped.config.train_split,
                        indices=self._held_out,
                        reader=self._validation_reader)


class DeviceTraining:
  """The 'device' pipeline's training data: the split on every device."""

  name = 'device'

  def __init__(self, pmapped: PmappedModel, train_split: source.Split):
    self._pmapped = pmapped
    self.num_examples = len(train_split)
    self._data = devices.replicate({'image': train_split.images,
                                    'label': train_split.labels},
                                   pmapped.local_devices)

  def dispatch(self, state, keys, num_steps: int):
    """Runs the next num_steps steps (1, or config.steps_per_dispatch)."""
    step = (self._pmapped.train_block if num_steps > 1
            else self._pmapped.train_step)
    return step(state, self._data, keys)

  def close(self) -> None:
    pass


class StreamTraining:
  """The 'stream' pipeline's training data: each step's rows of this
  process, read ahead on the host from `start_step` on."""

  name = 'stream'

  def __init__(self, pmapped: PmappedModel, reader: stream.RecordReader,
               kept: np.ndarray, data_rng, start_step: int, total_steps: int):
    config, info = pmapped.config, pmapped.info
    self._pmapped, self._reader = pmapped, reader
    self.num_examples = len(kept)
    order_key, _ = steps.data_keys(data_rng)  # The device pipeline's too.
    self._batches = stream.train_batches(
        reader, kept, HostBatchOrder(order_key, len(kept), config.batch_size),
        pmapped.local_positions(config.batch_size),
        len(pmapped.local_devices), start_step, total_steps,
        config.stream_threads, config.stream_prefetch,
        crop=(config.image_size, config.seed) if info.varying_size else None)

  def dispatch(self, state, keys, num_steps: int):
    """Runs the next num_steps steps on their rows, placed now (while the
    devices still run the steps before)."""
    rows = [next(self._batches) for _ in range(num_steps)]
    if num_steps == 1:
      step, batch = self._pmapped.train_batch_step, rows[0]
    else:  # (local devices, steps, per device, ...): the block's scan axis.
      step = self._pmapped.train_batch_block
      batch = jax.tree_util.tree_map(lambda *x: np.stack(x, 1), *rows)
    return step(state, devices.shard(batch, self._pmapped.local_devices),
                keys)

  def close(self) -> None:
    if jax.process_count() > 1:  # Each process reads its devices' share.
      print(f'process {jax.process_index()} of {jax.process_count()} read '
            f'{self._reader.reads:,} training records'
            f' ({len(self._reader.replaced)} replaced).', file=sys.stderr,
            flush=True)


def eval_batches(pmapped: PmappedModel, pipeline: str, split: str,
                 indices: np.ndarray | None = None,
                 examples: source.Split | None = None,
                 reader: stream.RecordReader | None = None) -> Iterable:
  """The padded, masked global batches of a split (its `indices`, by
  default all), this process's rows of each placed on its devices.

  device: examples (the split, decoded; by default decoded here) padded
  into batches, all placed at once. stream: each batch read (by `reader`,
  by default one that stops at an undecodable record) and placed as
  evaluation reaches it; the split is never held.
  """
  config, info = pmapped.config, pmapped.info
  if pipeline == 'device':
    if examples is None:
      examples = source.load_split(config, split)
    return pmapped.eval_batches(examples)
  reader = reader or stream.RecordReader(source.data_source(config, split),
                                         split, training=False)
  indices = np.arange(len(reader)) if indices is None else indices
  host = stream.eval_batches(
      reader, indices, config.eval_batch_size,
      pmapped.local_positions(config.eval_batch_size),
      len(pmapped.local_devices), info.image_shape, config.stream_threads,
      config.stream_prefetch,
      crop_size=config.image_size if info.varying_size else None)
  return (devices.shard(batch, pmapped.local_devices) for batch in host)
