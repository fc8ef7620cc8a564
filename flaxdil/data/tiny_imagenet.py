"""Tiny ImageNet as a TFDS dataset (TFDS ships no builder for it).

200 classes of 64×64 images: `train` (500 per class in the official zip) and
`validation` (50 per class, labels from val/val_annotations.txt). The
official test images have no labels and are not prepared.

The builder reads the official `tiny-imagenet-200.zip` without unpacking it,
from the manual directory (config.manual_dir) or, where a network is
reachable and no manual zip is there, from the official URL. It writes
array_record files with TFDS's own writer and needs no TensorFlow: images
are stored as the original JPEG bytes (greyscale ones converted to RGB and
stored as PNG, losslessly), so preparing changes no pixel.

Importing this module registers the builder under the name 'tiny_imagenet'.
"""

from __future__ import annotations

import io
import os
import zipfile

import tensorflow_datasets as tfds
from PIL import Image

ZIP_NAME = 'tiny-imagenet-200.zip'
URL = 'http://cs231n.stanford.edu/tiny-imagenet-200.zip'
_ROOT = 'tiny-imagenet-200/'


def _rgb_image_bytes(data: bytes) -> bytes:
  """The image's file bytes if it is RGB; else a lossless RGB PNG of it."""
  with Image.open(io.BytesIO(data)) as image:
    if image.mode == 'RGB':
      return data
    buffer = io.BytesIO()
    image.convert('RGB').save(buffer, format='PNG')
    return buffer.getvalue()


class TinyImagenet(tfds.core.GeneratorBasedBuilder):
  """Tiny ImageNet (Stanford CS231n), 200 classes, 64×64."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Train and validation splits of the official zip.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = (
      f'Place the official {ZIP_NAME} (from {URL}) in the manual directory '
      '(config.manual_dir).')

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        features=tfds.features.FeaturesDict({
            'image': tfds.features.Image(shape=(64, 64, 3),
                                         encoding_format='jpeg'),
            'label': tfds.features.ClassLabel(num_classes=200),
            'id': tfds.features.Text(),
        }),
        supervised_keys=('image', 'label'),
        homepage='https://www.kaggle.com/c/tiny-imagenet',
    )

  def _zip_path(self, dl_manager) -> str:
    try:
      manual = os.path.join(dl_manager.manual_dir, ZIP_NAME)
    except AssertionError:  # No manual directory, or an empty one.
      manual = None
    if manual and os.path.exists(manual):
      return manual
    return os.fspath(dl_manager.download(URL))

  def _split_generators(self, dl_manager):
    path = self._zip_path(dl_manager)
    with zipfile.ZipFile(path) as archive:
      wnids = archive.read(_ROOT + 'wnids.txt').decode().split()
    if len(wnids) != 200:
      raise ValueError(f'{path}: wnids.txt lists {len(wnids)} classes, not 200')
    # Class names in the order of the label indices.
    self.info.features['label'].names = wnids
    label_of = {wnid: i for i, wnid in enumerate(wnids)}
    return {'train': self._generate_examples(path, 'train', label_of),
            'validation': self._generate_examples(path, 'validation', label_of)}

  def _generate_examples(self, path: str, split: str, label_of: dict):
    with zipfile.ZipFile(path) as archive:
      if split == 'train':
        for name in sorted(archive.namelist()):
          parts = name[len(_ROOT):].split('/')
          # train/<wnid>/images/<wnid>_<i>.JPEG
          if (name.startswith(_ROOT + 'train/') and len(parts) == 4
              and parts[2] == 'images' and parts[3].endswith('.JPEG')):
            yield parts[3], {'image': _rgb_image_bytes(archive.read(name)),
                             'label': label_of[parts[1]], 'id': parts[3]}
      else:
        annotations = archive.read(_ROOT + 'val/val_annotations.txt').decode()
        for line in annotations.splitlines():
          if not line.strip():
            continue
          file_name, wnid = line.split('\t')[:2]
          image = archive.read(f'{_ROOT}val/images/{file_name}')
          yield file_name, {'image': _rgb_image_bytes(image),
                            'label': label_of[wnid], 'id': file_name}
