"""Datasets held in memory as uint8, with augmentation that runs on device.

A split is decoded once (TFDS `data_source`, array_record, no TensorFlow) into
one uint8 array. Training batches are gathered and augmented inside the jitted
train step; evaluation batches are padded and masked so every example counts.
"""

from __future__ import annotations

import dataclasses
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from flaxdil.errors import ConfigError, DataError

# Per-channel statistics of the training images, in [0, 255]. Normalising is a
# convenience for the optimiser, not part of the model's definition: datasets
# not listed here use 127.5 ± 127.5 (i.e. [-1, 1]).
_CHANNEL_MEAN_STD = {
    'cifar10': ((125.3, 123.0, 113.9), (63.0, 62.1, 66.7)),
    'cifar100': ((129.3, 124.1, 112.4), (68.2, 65.4, 70.4)),
    # ImageNet's, which Tiny ImageNet is drawn from.
    'tiny_imagenet': ((123.7, 116.3, 103.5), (58.4, 57.1, 57.4)),
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
  image_shape: tuple[int, int, int]
  mean: tuple[float, ...]
  std: tuple[float, ...]


def _tfds():
  import tensorflow_datasets as tfds  # Slow to import; only data needs it.
  from flaxdil import tiny_imagenet  # noqa: F401  Registers its builder.
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
  print(f'Preparing {name} in {searched} (once)...', flush=True)
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
  if None in image_shape:
    raise DataError(f'dataset {config.dataset!r} has images of varying size '
                    f'{image_shape}; flaxdil needs a fixed image size.')
  channels = image_shape[-1]
  mean, std = _CHANNEL_MEAN_STD.get(
      config.dataset, ((127.5,) * channels, (127.5,) * channels))
  return DatasetInfo(config.dataset, num_classes, image_shape, mean, std)


def load_split(config: ml_collections.ConfigDict, split: str) -> Split:
  """Decodes a whole TFDS split into memory (uint8 images, int32 labels)."""
  builder = _builder(config)
  try:
    source = builder.as_data_source(split=split)
  except ValueError as e:  # TFDS: "Unknown split 'x'. Should be one of [...]"
    raise DataError(f'dataset {config.dataset!r} cannot read split {split!r}: '
                    f'{e} Fix the split name in the config.') from None
  records = [source[i] for i in range(len(source))]
  images = np.stack([r['image'] for r in records]).astype(np.uint8)
  labels = np.array([r['label'] for r in records], np.int32)
  if images.ndim == 3:  # Greyscale stored without a channel axis.
    images = images[..., None]
  return Split(images, labels)


def train_validation_split(train: Split, validation_size: int
                           ) -> tuple[Split, Split]:
  """Holds validation_size examples out of train, chosen with a fixed seed."""
  if not 0 <= validation_size < len(train):
    raise ConfigError(
        f'config.validation_size={validation_size} must be >= 0 and smaller '
        f'than the training split ({len(train)} examples).')
  order = np.random.default_rng(_VALIDATION_SEED).permutation(len(train))
  keep, held_out = np.sort(order[validation_size:]), np.sort(order[:validation_size])
  return (Split(train.images[keep], train.labels[keep]),
          Split(train.images[held_out], train.labels[held_out]))


# --- On device --------------------------------------------------------------


def normalize(images: jax.Array, mean, std) -> jax.Array:
  """uint8 images → zero-mean, unit-variance float32."""
  mean = jnp.asarray(mean, jnp.float32)
  std = jnp.asarray(std, jnp.float32)
  return (images.astype(jnp.float32) - mean) / std


def augment(images: jax.Array, keys: jax.Array, crop_padding: int,
            random_flip: bool) -> jax.Array:
  """Random crop after zero padding and a random horizontal flip.

  `keys` holds one PRNG key per example, so the result depends only on the
  example's key: the same on 1 device or 8, and after a resume.
  """
  def one(image, key):
    crop_key, flip_key = jax.random.split(key)
    if crop_padding:
      h, w, _ = image.shape
      padded = jnp.pad(image, ((crop_padding, crop_padding),
                               (crop_padding, crop_padding), (0, 0)))
      dy, dx = jax.random.randint(crop_key, (2,), 0, 2 * crop_padding + 1)
      image = jax.lax.dynamic_slice(padded, (dy, dx, 0), image.shape)
    if random_flip:
      image = jnp.where(jax.random.bernoulli(flip_key), image[:, ::-1], image)
    return image

  return jax.vmap(one)(images, keys)


def steps_per_epoch(num_examples: int, batch_size: int) -> int:
  """Full global batches per epoch: the one definition, used by the host
  (schedule, logging) and by the device (batch order) alike."""
  steps = num_examples // batch_size
  if steps < 1:
    raise ConfigError(
        f'config.batch_size={batch_size} is larger than the {num_examples} '
        'training examples; lower it.')
  return steps


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
  if global_batch_size % num_devices:
    raise ConfigError(
        f'config.eval_batch_size={global_batch_size} is not divisible by the '
        f'{num_devices} devices; use a multiple of {num_devices}.')
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
