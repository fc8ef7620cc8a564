"""Tiny ImageNet: the TFDS builder on a fake zip in the official layout, and
on the reduced real zip in ../shared."""

import io
import json
import os
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image

from conftest import ROOT, load_config
from flaxdil.cli import modes
from flaxdil.data import source, tiny_imagenet
from flaxdil.training import loop
from flaxdil.errors import DataError

SHARED_ZIP = ROOT.parent / 'shared' / 'data' / 'tiny_imagenet' / tiny_imagenet.ZIP_NAME
_ROOT = 'tiny-imagenet-200/'


def write_fake_zip(path: str, num_classes: int = 200, train_per_class: int = 2,
                   val_per_class: int = 1, seed: int = 0,
                   truncated: tuple[str, ...] = ()) -> None:
  """A small zip in the official layout, for tests (some images greyscale).

  truncated: names of images (e.g. 'val_3.JPEG') stored cut short: a valid
  header, so they are prepared, but no complete image to decode."""
  rng = np.random.default_rng(seed)
  wnids = [f'n{10000000 + i}' for i in range(num_classes)]

  def jpeg(greyscale: bool) -> bytes:
    shape = (64, 64) if greyscale else (64, 64, 3)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape, np.uint8)).save(
        buffer, format='JPEG')
    return buffer.getvalue()

  def image(name: str, greyscale: bool) -> bytes:
    data = jpeg(greyscale)
    return data[:len(data) // 3] if name.rsplit('/', 1)[-1] in truncated else data

  with zipfile.ZipFile(path, 'w') as archive:
    archive.writestr(_ROOT + 'wnids.txt', '\n'.join(wnids) + '\n')
    archive.writestr(_ROOT + 'words.txt',
                     ''.join(f'{w}\tclass {w}\n' for w in wnids))
    annotations = []
    for c, wnid in enumerate(wnids):
      for i in range(train_per_class):
        name = f'{_ROOT}train/{wnid}/images/{wnid}_{i}.JPEG'
        archive.writestr(name, image(name, greyscale=(c + i) % 7 == 0))
      archive.writestr(f'{_ROOT}train/{wnid}/{wnid}_boxes.txt', '')
      for i in range(val_per_class):
        name = f'val_{c * val_per_class + i}.JPEG'
        archive.writestr(f'{_ROOT}val/images/{name}',
                         image(name, greyscale=False))
        annotations.append(f'{name}\t{wnid}\t0\t0\t63\t63\n')
    archive.writestr(_ROOT + 'val/val_annotations.txt', ''.join(annotations))
    archive.writestr(_ROOT + 'test/images/test_0.JPEG', jpeg(greyscale=False))


@pytest.fixture
def fake_config(tmp_path):
  manual = tmp_path / 'manual'
  manual.mkdir()
  write_fake_zip(str(manual / tiny_imagenet.ZIP_NAME))
  config = load_config('tiny')
  config.dataset = 'tiny_imagenet'
  config.manual_dir = str(manual)
  config.data_dir = str(tmp_path / 'tfds')
  config.test_split = 'validation'
  config.validation_size = 40
  return config


def _zip_image(manual_dir, name):
  with zipfile.ZipFile(os.path.join(manual_dir, tiny_imagenet.ZIP_NAME)) as z:
    return np.asarray(Image.open(io.BytesIO(z.read(_ROOT + name))).convert('RGB'))


def test_builder_prepares_train_and_validation_exactly(fake_config):
  info = source.dataset_info(fake_config)
  assert (info.num_classes, info.image_shape) == (200, (64, 64, 3))
  train_split = source.load_split(fake_config, 'train')
  validation = source.load_split(fake_config, 'validation')
  assert train_split.images.shape == (400, 64, 64, 3)
  assert train_split.images.dtype == np.uint8
  assert np.bincount(train_split.labels, minlength=200).tolist() == [2] * 200
  assert np.bincount(validation.labels, minlength=200).tolist() == [1] * 200
  # Pixels and labels are the zip's: compare records by id.
  validation_source = tfds.builder(
      'tiny_imagenet', data_dir=fake_config.data_dir
  ).as_data_source(split='validation')
  wnids = [f'n{10000000 + i}' for i in range(200)]
  for record in (validation_source[i] for i in range(0, 200, 37)):
    name = record['id'].decode() if isinstance(record['id'], bytes) else record['id']
    index = int(name.split('_')[1].split('.')[0])
    assert record['label'] == index  # val_<c>.JPEG is of class c here.
    np.testing.assert_array_equal(
        record['image'], _zip_image(fake_config.manual_dir, f'val/images/{name}'))
  train_source = tfds.builder('tiny_imagenet', data_dir=fake_config.data_dir
                              ).as_data_source(split='train')
  records = {r['id'] if isinstance(r['id'], str) else r['id'].decode(): r
             for r in (train_source[i] for i in range(len(train_source)))}
  # (class + i) % 7 == 0 is greyscale in the fake zip: stored as RGB.
  grey = records[f'{wnids[0]}_0.JPEG']
  assert grey['label'] == 0 and grey['image'].shape == (64, 64, 3)
  np.testing.assert_array_equal(
      grey['image'], _zip_image(fake_config.manual_dir,
                                f'train/{wnids[0]}/images/{wnids[0]}_0.JPEG'))


@pytest.mark.slow
def test_trains_and_evaluates_the_validation_split(fake_config, tmp_path):
  workdir = str(tmp_path / 'run')
  fake_config.num_train_steps = 2
  summary = loop.train_and_evaluate(fake_config, workdir)
  assert summary['test_split'] == 'validation'
  os.remove(os.path.join(workdir, 'eval_validation.json'))
  result = modes.evaluate(fake_config, workdir)
  written = json.load(open(os.path.join(workdir, 'eval_validation.json')))
  assert written['num_examples'] == 200 and written == result


def test_missing_manual_dir_is_a_clear_error(fake_config, tmp_path):
  fake_config.manual_dir = str(tmp_path / 'nowhere')
  with pytest.raises(DataError, match='manual directory .* does not exist'):
    source.load_split(fake_config, 'train')
  assert not os.path.exists(fake_config.data_dir)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_ZIP.exists(), reason=f'{SHARED_ZIP} not found')
def test_prepares_the_reduced_real_zip(tmp_path):
  config = load_config('tiny_imagenet')
  config.manual_dir = str(SHARED_ZIP.parent)
  config.data_dir = str(tmp_path / 'tfds')
  validation = source.load_split(config, 'validation')
  assert validation.images.shape == (10000, 64, 64, 3)
  assert np.bincount(validation.labels, minlength=200).tolist() == [50] * 200
  train_split = source.load_split(config, 'train')
  assert np.bincount(train_split.labels, minlength=200).tolist() == [50] * 200
