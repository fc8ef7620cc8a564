"""Data: the holdout, the batch order, augmentation and padded evaluation."""

import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from flaxdil.data import augment, batches, source
from flaxdil.errors import DataError


def _split(n, size=4):
  images = np.arange(n * size * size * 3, dtype=np.uint32).reshape(n, size, size, 3)
  return source.Split((images % 251).astype(np.uint8), np.arange(n, dtype=np.int32))


def test_validation_is_held_out_disjoint_and_fixed():
  train, validation = source.train_validation_split(_split(100), 30)
  assert len(train) == 70 and len(validation) == 30
  assert not set(train.labels) & set(validation.labels)
  assert set(train.labels) | set(validation.labels) == set(range(100))
  again = source.train_validation_split(_split(100), 30)[1]
  np.testing.assert_array_equal(again.labels, validation.labels)


def test_each_epoch_is_a_permutation_and_epochs_differ():
  key = jax.random.key(0)
  epoch0 = np.concatenate([batches.epoch_batch_indices(key, s, 20, 5) for s in range(4)])
  epoch1 = np.concatenate([batches.epoch_batch_indices(key, s, 20, 5) for s in range(4, 8)])
  assert sorted(epoch0) == list(range(20)) == sorted(epoch1)
  assert list(epoch0) != list(epoch1)


def test_augment_crops_and_flips_per_example_key():
  images = jnp.asarray(_split(6, size=8).images)
  keys = jax.random.split(jax.random.key(3), 6)
  out = augment.augment(images, keys, crop_padding=4, random_flip=True)
  assert out.shape == images.shape and out.dtype == jnp.uint8
  # An example's result depends only on its own key.
  alone = augment.augment(images[2:3], keys[2:3], crop_padding=4, random_flip=True)
  np.testing.assert_array_equal(out[2:3], alone)
  assert not np.array_equal(out, images)
  np.testing.assert_array_equal(
      augment.augment(images, keys, crop_padding=0, random_flip=False), images)


def test_padded_eval_batches_cover_every_example_once():
  split = _split(23)
  padded = list(batches.padded_eval_batches(split, 10, num_devices=2))
  assert len(padded) == 3
  assert padded[0]['image'].shape == (2, 5, 4, 4, 3)
  masks = np.concatenate([b['mask'].reshape(-1) for b in padded])
  labels = np.concatenate([b['label'].reshape(-1) for b in padded])[masks]
  assert masks.sum() == 23
  np.testing.assert_array_equal(labels, split.labels)


def test_a_data_dir_that_is_missing_or_a_file_is_named(tiny_config, tmp_path):
  for path, message in [(tmp_path / 'nowhere', 'does not exist'),
                        (pathlib.Path(__file__), 'is a file, not a directory')]:
    tiny_config.data_dir = str(path)
    with pytest.raises(DataError, match=f'data directory .* {message}'):
      source.dataset_info(tiny_config)
  tiny_config.data_dir, tiny_config.dataset = str(tmp_path), 'no_such_dataset'
  with pytest.raises(DataError, match="unknown dataset 'no_such_dataset'"):
    source.dataset_info(tiny_config)
