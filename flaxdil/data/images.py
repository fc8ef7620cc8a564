"""Images of any size made the size the network sees, on the host: a random
resized crop for training, the shorter side resized and a centre crop for
evaluation (the usual ImageNet recipe). Flip and normalisation stay on the
device.

The training crop's randomness comes from (seed, step, global position)
alone, so it is the same on any layout of processes and devices and after
a resume.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

# The random resized crop: a share of the image's area and an aspect ratio,
# drawn up to _ATTEMPTS times until the crop fits (Szegedy et al., 2015).
_AREA = (0.08, 1.0)
_RATIO = (3 / 4, 4 / 3)
_ATTEMPTS = 10
# Evaluation resizes the shorter side to size / _CENTRE (256 for 224), then
# crops the centre.
_CENTRE = 0.875


def _resized(image: np.ndarray, height: int, width: int) -> np.ndarray:
  """Bilinear resize with Pillow (uint8 in, uint8 out)."""
  if image.shape[:2] == (height, width):
    return image
  squeeze = image.ndim == 3 and image.shape[2] == 1
  pil = Image.fromarray(image[..., 0] if squeeze else image)
  out = np.asarray(pil.resize((width, height), Image.BILINEAR))
  return out[..., None] if squeeze else out


def random_resized_crop(image: np.ndarray, size: int, seed: int, step: int,
                        position: int) -> np.ndarray:
  """A size×size crop of a random share of the image at a random aspect
  ratio; the randomness is a function of (seed, step, position)."""
  rng = np.random.default_rng([seed, step, position])
  height, width = image.shape[:2]
  area = height * width
  for _ in range(_ATTEMPTS):
    target = area * rng.uniform(*_AREA)
    ratio = math.exp(rng.uniform(math.log(_RATIO[0]), math.log(_RATIO[1])))
    w = int(round(math.sqrt(target * ratio)))
    h = int(round(math.sqrt(target / ratio)))
    if 0 < w <= width and 0 < h <= height:
      top = int(rng.integers(0, height - h + 1))
      left = int(rng.integers(0, width - w + 1))
      return _resized(image[top:top + h, left:left + w], size, size)
  return centre_crop(image, size, fraction=1.0)


def centre_crop(image: np.ndarray, size: int,
                fraction: float = _CENTRE) -> np.ndarray:
  """The shorter side resized to size / fraction, then the central
  size×size."""
  height, width = image.shape[:2]
  scale = size / fraction / min(height, width)
  h = max(size, int(round(height * scale)))
  w = max(size, int(round(width * scale)))
  image = _resized(image, h, w)
  top, left = (h - size) // 2, (w - size) // 2
  return image[top:top + size, left:left + size]


def to_network_input(image: Image.Image, shape: tuple[int, int, int],
                     varying_size: bool) -> np.ndarray:
  """Any image file's pixels → the uint8 [H, W, C] a network of input
  `shape` evaluates, for classifying one's own images (flaxdil.predict).

  The camera's orientation (EXIF) is applied, then the mode converted (RGB
  for 3 channels, grey for 1; alpha is dropped, palettes expanded). An
  image already of the network's size is used as it is, as evaluation
  uses its images. Any other is brought to it as evaluation brings its
  images: for a dataset of varying image size (ImageNet's kind) the
  shorter side resized to size / 0.875 and the centre cropped (centre_crop);
  for a dataset of one size (CIFAR-10's 32×32, whose images are whole
  scenes) the shorter side resized to the size and the centre cropped, so
  nothing of a square image is lost.
  """
  from PIL import ImageOps
  image = ImageOps.exif_transpose(image)
  height, width, channels = shape
  pixels = np.asarray(image.convert('RGB' if channels == 3 else 'L'))
  if pixels.ndim == 2:
    pixels = pixels[..., None]
  if pixels.shape[:2] == (height, width):
    return pixels
  return centre_crop(pixels, height,
                     fraction=_CENTRE if varying_size else 1.0)
