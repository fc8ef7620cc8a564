"""TFDS datasets: found (or prepared) in the data dir, their metadata, their
splits checked and decoded whole into memory as uint8.

A split is decoded once (TFDS `data_source`, array_record, no TensorFlow)
into one uint8 array. The validation hold-out is drawn from the training
split with a fixed seed.
"""

from __future__ import annotations

import dataclasses
import os

import ml_collections
import numpy as np

from flaxdil import quiet
from flaxdil.data.records import RecordReader
from flaxdil.errors import DataError

# Per-channel statistics of the training images, in [0, 255]. Normalising is a
# convenience for the optimiser, not part of the model's definition: datasets
# not listed here use 127.5 ± 127.5 (i.e. [-1, 1]).
_CHANNEL_MEAN_STD = {
    'cifar10': ((125.3, 123.0, 113.9), (63.0, 62.1, 66.7)),
    'cifar100': ((129.3, 124.1, 112.4), (68.2, 65.4, 70.4)),
    # ImageNet's, which Tiny ImageNet is drawn from.
    'tiny_imagenet': ((123.7, 116.3, 103.5), (58.4, 57.1, 57.4)),
    'imagenet2012': ((123.7, 116.3, 103.5), (58.4, 57.1, 57.4)),
}
# Datasets TFDS can prepare only from files a user downloaded by hand.
_DOWNLOADED_BY_HAND = {
    'imagenet2012': 'ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar '
                    'from image-net.org',
}
# Validation examples are chosen with a fixed seed, independent of
# config.seed, so runs with different seeds select models on the same data.
_VALIDATION_SEED = 20260101


@dataclasses.dataclass(frozen=True)
class Split:
  """A whole split in host memory."""
  images: np.ndarray  # uint8, (N, H, W, C)
  labels: np.ndarray  # int32, (N,)

  def __len__(self) -> int:
    return len(self.labels)


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
  name: str
  num_classes: int
  # The images' shape as the pipeline delivers them: the dataset's own, or
  # for images of varying size (varying_size) config.image_size, which the
  # host crops them to (flaxdil.data.images).
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]
  varying_size: bool = False

  def decoded_bytes(self, num_examples: int) -> int:
    """What num_examples decoded images of image_shape hold, uint8."""
    return num_examples * int(np.prod(self.image_shape))


def _tfds_noise(message: str) -> bool:
  """Two TFDS warnings that say nothing to flaxdil's users:

  * that OpenCV (a 40 MB wheel) would decode faster than Pillow: each split
    is decoded once, and Pillow decodes exactly the pixels flaxdil's
    results were measured on (OpenCV's JPEG decoder may differ);
  * that a data dir has no prepared copy of the dataset ('Variant folder
    ... has no dataset_info.json'): inspection needs only the builder's
    own metadata, and where the data itself is needed flaxdil says what is
    missing and how to fix it (DataError).
  """
  return (message.startswith('OpenCV is not installed')
          or (message.startswith('Variant folder')
              and message.endswith('has no dataset_info.json')))


def _tfds():
  import tensorflow_datasets as tfds  # Slow to import; only data needs it.
  quiet.drop_absl_lines(_tfds_noise)
  from flaxdil.data import tiny_imagenet  # noqa: F401  Registers its builder.
  return tfds


def _builder(config: ml_collections.ConfigDict, prepared: bool = True):
  """Finds the TFDS builder, or says exactly what is missing.

  prepared: also require the data itself, preparing it where that can work:
  from config.manual_dir (e.g. Tiny ImageNet's zip), or by downloading where
  no data_dir was given. Without it only the dataset's metadata is needed.
  """
  tfds = _tfds()
  name = config.dataset
  manual_dir = config.get('manual_dir')
  if manual_dir:
    manual_dir = os.path.expanduser(str(manual_dir))
    if not os.path.isdir(manual_dir):
      raise DataError(
          f'manual directory {manual_dir!r} (config.manual_dir) does not '
          f'exist. Fix: point --config.manual_dir at the directory that holds '
          f'{name!r}\'s downloaded files (e.g. ../shared/data/tiny_imagenet).')
  explicit_dir = config.data_dir
  if explicit_dir:
    explicit_dir = os.path.expanduser(str(explicit_dir))
    # With a manual directory the data dir is where the dataset gets written.
    if os.path.isfile(explicit_dir):
      raise DataError(
          f'data directory {explicit_dir!r} (config.data_dir) is a file, not '
          'a directory. Fix: point --config.data_dir at a TFDS data dir (e.g. '
          '../shared/tensorflow_datasets).')
    if not manual_dir and not os.path.isdir(explicit_dir):
      raise DataError(
          f'data directory {explicit_dir!r} (config.data_dir) does not exist. '
          'Fix: point --config.data_dir at a TFDS data dir that holds a '
          f'prepared {name!r} (e.g. ../shared/tensorflow_datasets), or leave '
          'it unset to use $TFDS_DATA_DIR or the TFDS default.')
  data_dir = explicit_dir or os.environ.get('TFDS_DATA_DIR') or None
  try:
    builder = tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError:
    raise DataError(
        f'unknown dataset {name!r}: TFDS has no builder of that name. '
        'Fix: set --config.dataset to a TFDS name such as cifar10 (or '
        'tiny_imagenet, which flaxdil provides).') from None
  if builder.is_prepared() or not prepared:
    return builder
  searched = builder.data_dir
  if explicit_dir and not manual_dir:
    raise DataError(
        f'dataset {name!r} is not prepared in {explicit_dir!r} (looked for '
        f'{searched}/dataset_info.json). Fix: point --config.data_dir at the '
        f'TFDS data dir that holds {name}/<version>/, or prepare it there '
        'first (for datasets read from downloaded files, set '
        '--config.manual_dir).')
  if name in _DOWNLOADED_BY_HAND and not manual_dir:
    raise DataError(
        f'dataset {name!r} is not prepared in {searched!r}, and TFDS prepares '
        f'it only from files downloaded by hand ({_DOWNLOADED_BY_HAND[name]}). '
        'Fix: put them in a directory and pass --config.manual_dir=DIR (with '
        '--config.data_dir where to prepare it), or point --config.data_dir '
        f'at a TFDS data dir that holds a prepared {name}.')
  # Offline, TFDS's download fails only after its retries wait on DNS
  # (3.5 minutes on this project's machines): say at once what to do.
  how = (f'from {manual_dir}' if manual_dir else
         'downloading it; offline, this fails after minutes of retries: stop '
         'it and pass --config.data_dir=DIR of a prepared copy')
  print(f'Preparing {name} in {searched} (once), {how}.', flush=True)
  try:
    builder.download_and_prepare(
        file_format='array_record',
        download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
  except Exception as e:  # Network, permissions, a missing file or extra.
    raise DataError(
        f'dataset {name!r} is not prepared in {searched!r} and preparing it '
        f'failed ({type(e).__name__}: {str(e).splitlines()[0][:300]}). '
        'Fix: set --config.data_dir (or $TFDS_DATA_DIR) to a TFDS data dir '
        f'that holds a prepared {name}, or --config.manual_dir to a directory '
        'holding its downloaded files.') from None
  return builder


def dataset_info(config: ml_collections.ConfigDict) -> DatasetInfo:
  """Number of classes, image shape and normalisation of config.dataset.

  Needs only the builder's metadata, so a model can be inspected before its
  data is downloaded.
  """
  builder = _builder(config, prepared=False)
  features = builder.info.features
  try:
    num_classes = features['label'].num_classes
    image_shape = tuple(features['image'].shape)
  except KeyError:
    raise DataError(f'dataset {config.dataset!r} has no image/label features; '
                    'flaxdil trains image classifiers.') from None
  channels = image_shape[-1]
  varying = None in image_shape[:2]
  if varying:
    if not config.image_size:
      raise DataError(
          f'dataset {config.dataset!r} has images of varying size '
          f'{image_shape}. Fix: set --config.image_size (e.g. 224): the host '
          'crops them to it (config.input_pipeline stream or auto).')
    image_shape = (config.image_size, config.image_size, channels)
  mean, std = _CHANNEL_MEAN_STD.get(
      config.dataset, ((127.5,) * channels, (127.5,) * channels))
  return DatasetInfo(config.dataset, num_classes, image_shape, mean, std,
                     varying_size=varying)


def class_names(config: ml_collections.ConfigDict) -> list[str]:
  """The names of config.dataset's classes, by label (the builder's
  metadata; for Tiny ImageNet its WordNet ids)."""
  return list(_builder(config, prepared=False).info.features['label'].names)


def split_sizes(config: ml_collections.ConfigDict,
                splits: dict[str, str]) -> dict[str, int]:
  """{name: number of examples} of each split, given as {name: split}: the
  name says where the split was asked for ('config.test_split', '--split'),
  the split is TFDS split syntax, slices included ('test[:500]'). Opens
  each split of the prepared dataset (preparing it where that can work)
  without reading its examples."""
  builder = _builder(config)
  sizes = {}
  for name, split in splits.items():
    try:
      size = len(builder.as_data_source(split=split))
    except ValueError as e:  # Unknown, not split syntax, or an empty slice.
      raise DataError(
          f'{name}={split!r}: dataset {config.dataset!r} cannot read that '
          f'split ({str(e).strip().splitlines()[0]}). Fix: name one of its '
          f'splits {sorted(builder.info.splits)}, or a TFDS slice of one '
          '(e.g. train[:10000]) that selects examples.') from None
    if size <= 0:
      raise DataError(f'{name}={split!r} selects no examples of '
                      f'dataset {config.dataset!r}. Fix the slice.')
    sizes[name] = size
  return sizes


def data_source(config: ml_collections.ConfigDict, split: str):
  """The prepared split (checked: split_sizes) as a TFDS data source: its
  records by index, each decoded when read."""
  return _builder(config).as_data_source(split=split)


def load_split(config: ml_collections.ConfigDict, split: str) -> Split:
  """Decodes a whole TFDS split (checked: split_sizes) of images of one
  size into memory: uint8 images, int32 labels. An undecodable record is an
  error (DataError), as in any split evaluation reads."""
  reader = RecordReader(data_source(config, split), split, training=False)
  return Split(*reader.read(range(len(reader))))


def holdout(num_examples: int, validation_size: int
            ) -> tuple[np.ndarray, np.ndarray]:
  """(kept, held out): the sorted indices training reads and the
  validation_size ones it holds out (fewer than there are: a config rule),
  chosen with a fixed seed."""
  order = np.random.default_rng(_VALIDATION_SEED).permutation(num_examples)
  return np.sort(order[validation_size:]), np.sort(order[:validation_size])


def train_validation_split(train: Split, validation_size: int
                           ) -> tuple[Split, Split]:
  """The training split, and the hold-out taken out of it."""
  keep, held_out = holdout(len(train), validation_size)
  return (Split(train.images[keep], train.labels[keep]),
          Split(train.images[held_out], train.labels[held_out]))
