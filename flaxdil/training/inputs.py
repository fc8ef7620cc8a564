"""How data reaches the devices: one interface, `Pipeline`, with the two
implementations that config.input_pipeline names, for training and for
evaluation.

  DevicePipeline  every device holds the whole decoded training split
                  (uint8); each step sends it only the step's row indices,
                  and the step gathers the rows itself
  StreamPipeline  each process reads its devices' rows of each step on the
                  host, on a loader's threads (flaxdil.data.stream), and
                  sends the rows

Both take each step's global batch from the same batch order
(flaxdil.data.batches.BatchOrder, one permutation per epoch) and the step
augments every row with a key of its global position, so the choice
changes speed and memory, never a result. `choose` resolves 'auto' once;
nothing else asks which pipeline it has.
"""

from __future__ import annotations

import abc
import os
import sys
from typing import Iterable, Iterator

import jax
import ml_collections
import numpy as np

from flaxdil.data import batches, source, stream
from flaxdil.data.records import RecordReader
from flaxdil.training.devices import Devices

# 'auto' keeps the training split on the devices where its decoded images
# take at most this share of one device's memory (a CPU's: the host's),
# leaving the rest to the model, its activations and the evaluation data.
DEVICE_SHARE = 0.25


class Pipeline(abc.ABC):
  """A run's data on its way to the devices: the training split and its
  validation hold-out (after `load_training`), and any split to evaluate.
  Batches come out placed on this process's devices, shaped (local
  devices, ...) by `Devices`; data code below reads flat rows."""

  name: str

  def __init__(self, config: ml_collections.ConfigDict,
               info: source.DatasetInfo, devices: Devices, reason: str):
    self.config, self.info, self.devices = config, info, devices
    self.reason = reason  # Why this pipeline (the log says it).
    self.num_train = self.num_validation = 0
    # Passed to every train step: the split held on each device, or None.
    self.resident = None

  @abc.abstractmethod
  def load_training(self) -> None:
    """Reads (or opens) the training split and takes the hold-out out of
    it; sets num_train and num_validation."""

  @abc.abstractmethod
  def _step_rows(self, order: batches.BatchOrder, first_step: int,
                 last_step: int) -> Iterator[dict]:
    """Per step from first_step on, what this process sends its devices
    for its rows of the global batch (flat, as
    Devices.local_positions orders them)."""

  def train_inputs(self, order_key: jax.Array, first_step: int,
                   last_step: int) -> 'TrainInputs':
    """The inputs of steps first_step .. last_step - 1 (state.step's), in
    blocks placed for steps.train_steps."""
    order = batches.BatchOrder(order_key, self.num_train,
                               self.config.batch_size)
    return TrainInputs(self._step_rows(order, first_step, last_step),
                       self.devices)

  @abc.abstractmethod
  def validation_batches(self) -> Iterable:
    """The hold-out's padded, masked evaluation batches, placed."""

  @abc.abstractmethod
  def eval_batches(self, split: str) -> Iterable:
    """A whole split's padded, masked evaluation batches, placed."""

  @property
  def replaced_records(self) -> int:
    """Undecodable records of the training split replaced so far, of those
    this process read (by training, or by the hold-out's validation)."""
    return 0

  def close(self) -> None:
    pass


class TrainInputs:
  """Each step's inputs, handed out in blocks of steps: placed as the loop
  dispatches them (while the devices still run the steps before)."""

  def __init__(self, rows: Iterator[dict], devices: Devices):
    self._rows, self._devices = rows, devices

  def next(self, num_steps: int):
    """The next num_steps steps' inputs: (local devices, steps, ...)."""
    return self._devices.place_steps([next(self._rows)
                                      for _ in range(num_steps)])


class DevicePipeline(Pipeline):
  """The training split decoded once and held by every device."""

  name = 'device'

  def load_training(self, splits: tuple[source.Split, source.Split] | None
                    = None) -> None:
    """splits: (training, validation) already in memory (benchmarks); by
    default config.train_split is decoded, undecodable records replaced."""
    config = self.config
    self._reader = None
    if splits is None:
      self._reader = RecordReader(
          source.data_source(config, config.train_split), config.train_split,
          training=True)
      whole = source.Split(*self._reader.read(range(len(self._reader))))
      splits = source.train_validation_split(whole, config.validation_size)
    train, self._validation = splits
    self.num_train, self.num_validation = len(train), len(self._validation)
    self.resident = self.devices.replicate({'image': train.images,
                                            'label': train.labels})
    self._validation_batches = None

  def _step_rows(self, order, first_step, last_step):
    positions = self.devices.local_positions(self.config.batch_size)
    for step in range(first_step, last_step):
      rows = {'index': order.indices(step)[positions]}
      if self.config.alternating_flip:
        rows['flip'] = order.flips(step)[positions]
      yield rows

  def validation_batches(self) -> list:
    if self._validation_batches is None:  # Placed once, kept.
      self._validation_batches = self._placed(self._validation)
    return self._validation_batches

  def eval_batches(self, split: str) -> list:
    return self._placed(source.load_split(self.config, split))

  def _placed(self, examples: source.Split) -> list:
    return [self.devices.place_global(batch) for batch in
            batches.padded_eval_batches(examples,
                                        self.config.eval_batch_size)]

  @property
  def replaced_records(self) -> int:
    return len(self._reader.replaced) if self._reader else 0


class StreamPipeline(Pipeline):
  """Each step's rows read from disk on the host; the split never held."""

  name = 'stream'

  def load_training(self) -> None:
    config = self.config
    split = config.train_split
    self._reader = RecordReader(source.data_source(config, split), split,
                                training=True)
    self._kept, self._held_out = source.holdout(len(self._reader),
                                                config.validation_size)
    # The hold-out's own reader of the training split (opened once; it
    # replaces undecodable records as decoding the whole split does), so
    # the training reader's counts are training's.
    self._validation_reader = RecordReader(source.data_source(config, split),
                                           split, training=True)
    self.num_train, self.num_validation = (len(self._kept),
                                           len(self._held_out))

  def _step_rows(self, order, first_step, last_step):
    config = self.config
    return stream.train_batches(
        self._reader, self._kept, order,
        self.devices.local_positions(config.batch_size), first_step,
        last_step, config.stream_threads, config.stream_prefetch,
        crop=((config.image_size, config.seed) if self.info.varying_size
              else None), flips=config.alternating_flip)

  def validation_batches(self) -> Iterable:
    return self._batches(self._validation_reader, self._held_out)

  def eval_batches(self, split: str) -> Iterable:
    reader = RecordReader(source.data_source(self.config, split), split,
                          training=False)
    return self._batches(reader, np.arange(len(reader)))

  def _batches(self, reader: RecordReader, indices: np.ndarray) -> Iterable:
    """Read and placed as evaluation reaches each batch."""
    config = self.config
    host = stream.eval_batches(
        reader, indices, config.eval_batch_size,
        self.devices.local_positions(config.eval_batch_size),
        self.info.image_shape, config.stream_threads, config.stream_prefetch,
        crop_size=config.image_size if self.info.varying_size else None)
    return (self.devices.place(batch) for batch in host)

  @property
  def replaced_records(self) -> int:
    if not hasattr(self, '_reader'):
      return 0
    return len(self._reader.replaced | self._validation_reader.replaced)

  def close(self) -> None:
    if jax.process_count() > 1 and hasattr(self, '_reader'):
      # Each process reads its devices' share.
      print(f'process {jax.process_index()} of {jax.process_count()} read '
            f'{self._reader.reads:,} training records'
            f' ({len(self._reader.replaced)} replaced).', file=sys.stderr,
            flush=True)


PIPELINES = {p.name: p for p in (DevicePipeline, StreamPipeline)}


def _memory_bytes(device) -> int:
  stats = device.memory_stats()  # None on a CPU.
  if stats and stats.get('bytes_limit'):
    return int(stats['bytes_limit'])
  return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')


def choose(config: ml_collections.ConfigDict, info: source.DatasetInfo,
           devices: Devices, train_examples: int) -> Pipeline:
  """The pipeline config.input_pipeline names, 'auto' resolved: 'device'
  where the decoded split of train_examples fits DEVICE_SHARE of one
  device's memory and its images are of one size. Opens nothing."""
  name, why = config.input_pipeline, 'config.input_pipeline'
  if name == 'auto' and info.varying_size:
    name, why = 'stream', f'{info.name} images vary in size'
  elif name == 'auto':
    device = devices.local[0]
    need, have = info.decoded_bytes(train_examples), _memory_bytes(device)
    why = (f'{need / 1e6:,.0f} MB of decoded training images against '
           f'{DEVICE_SHARE:.0%} of the {have / 2**30:.0f} GiB of '
           f'{"the host" if device.platform == "cpu" else "one device"}')
    name = 'device' if need <= DEVICE_SHARE * have else 'stream'
  return PIPELINES[name](config, info, devices, why)
