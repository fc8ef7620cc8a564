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
  order = batches.BatchOrder(jax.random.key(0), 20, 5)
  epoch0 = np.concatenate([order.indices(s) for s in range(4)])
  epoch1 = np.concatenate([order.indices(s) for s in range(4, 8)])
  assert sorted(epoch0) == list(range(20)) == sorted(epoch1)
  assert list(epoch0) != list(epoch1)
  # A pure function of (key, step): a fresh order (a resume) agrees, in
  # any order of asking.
  again = batches.BatchOrder(jax.random.key(0), 20, 5)
  np.testing.assert_array_equal(again.indices(5), epoch1[5:10])
  np.testing.assert_array_equal(again.indices(1), epoch0[5:10])


def test_the_batch_order_is_the_permutation_once_computed_in_each_step():
  """What the device step computed at every step before the order moved to
  the host (once per epoch): the same indices, so the same checkpoints."""
  key, n, batch = jax.random.key(3), 23, 5
  order = batches.BatchOrder(key, n, batch)
  for step in (0, 3, 4, 9):
    epoch, position = divmod(step, 4)
    old = jax.lax.dynamic_slice(jax.random.permutation(
        jax.random.fold_in(key, epoch), n), (position * batch,), (batch,))
    np.testing.assert_array_equal(order.indices(step), np.asarray(old))


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


def test_cutout_sets_one_square_inside_each_image_to_the_mean():
  images = jax.random.normal(jax.random.key(0), (16, 8, 8, 3)) + 5.0
  keys = jax.random.split(jax.random.key(3), 16)
  out = np.asarray(augment.cutout(images, keys, 3))
  places = set()
  for i in range(16):
    cut = np.all(out[i] == 0, axis=-1)
    rows, cols = np.nonzero(cut)
    # One 3×3 square, wholly inside; everything else untouched.
    assert cut.sum() == 9 and np.ptp(rows) == 2 and np.ptp(cols) == 2
    np.testing.assert_array_equal(out[i][~cut], np.asarray(images[i])[~cut])
    places.add((rows.min(), cols.min()))
  assert len(places) > 4  # Anywhere, not one fixed place.
  # An example's square depends only on its own key.
  np.testing.assert_array_equal(
      out[5:6], augment.cutout(images[5:6], keys[5:6], 3))


def test_early_images_are_windows_of_the_padded_image_or_all_of_it_resized():
  """config.early_size: S×S anywhere in the padded image, unscaled; or the
  whole augmented image resized (early_mode='resize')."""
  images = jnp.asarray(_split(6, size=8).images)
  keys = jax.random.split(jax.random.key(3), 6)
  out = np.asarray(augment.augment(images, keys, crop_padding=2,
                                   random_flip=False, early_size=6))
  assert out.shape == (6, 6, 6, 3)
  padded = np.pad(np.asarray(images), ((0, 0), (2, 2), (2, 2), (0, 0)))
  corners = set()
  for i in range(6):
    found = [(y, x) for y in range(7) for x in range(7)
             if np.array_equal(padded[i, y:y + 6, x:x + 6], out[i])]
    assert found, f'example {i} is not a window of its padded image'
    corners.add(found[0])
  assert len(corners) > 1  # Anywhere, not one fixed window.
  alone = augment.augment(images[2:3], keys[2:3], 2, False, early_size=6)
  np.testing.assert_array_equal(out[2:3], alone)  # Its own key only.
  # early_mode='resize': the whole augmented image, scaled down.
  whole = augment.augment(images, keys, 2, True)
  resized = augment.augment(images, keys, 2, True, 4, 'resize')
  assert resized.shape == (6, 4, 4, 3) and resized.dtype == jnp.float32
  np.testing.assert_array_equal(resized, jax.image.resize(
      whole.astype(jnp.float32), (6, 4, 4, 3), 'linear', antialias=True))


def test_the_alternating_flip_mirrors_each_example_every_other_epoch():
  order = batches.BatchOrder(jax.random.key(0), 1000, 100)
  def epoch_flips(epoch):  # By example, over the epoch's ten steps.
    flipped = np.zeros(1000, int)
    for step in range(10 * epoch, 10 * epoch + 10):
      flipped[order.indices(step)] = order.flips(step)
    return flipped
  first, second, third = (epoch_flips(e) for e in range(3))
  assert 400 < first.sum() < 600  # A random half.
  np.testing.assert_array_equal(second, 1 - first)  # Seen the other way.
  np.testing.assert_array_equal(third, first)
  # A pure function of (key, step), like the order itself.
  again = batches.BatchOrder(jax.random.key(0), 1000, 100)
  np.testing.assert_array_equal(again.flips(13), order.flips(13))


def test_padded_eval_batches_cover_every_example_once():
  split = _split(23)
  padded = list(batches.padded_eval_batches(split, 10))
  assert len(padded) == 3
  assert padded[0]['image'].shape == (10, 4, 4, 3)
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


def test_a_download_that_fails_says_at_once_how_to_do_without_it(
    tiny_config, tmp_path, monkeypatch, capsys):
  """No data dir given, nothing prepared, no network: the first line says
  what to do instead (TFDS's retries take minutes), the error the same."""
  import tensorflow_datasets as tfds

  def offline(*args, **kwargs):
    raise ConnectionError('Failed to resolve www.cs.toronto.edu')

  monkeypatch.setattr(tfds.core.DatasetBuilder, 'download_and_prepare',
                      offline)
  monkeypatch.setenv('TFDS_DATA_DIR', str(tmp_path))
  tiny_config.data_dir, tiny_config.dataset = None, 'cifar10'
  with pytest.raises(DataError, match=r"preparing it failed \(ConnectionError: "
                     r'Failed to resolve .*Fix: set --config.data_dir'):
    source.load_split(tiny_config, 'test')
  assert ('downloading it; offline, this fails after minutes of retries: stop '
          'it and pass --config.data_dir=DIR of a prepared copy'
          in capsys.readouterr().out)
  assert not list(tmp_path.rglob('*.array_record*'))  # Nothing half-written.
