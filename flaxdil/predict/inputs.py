"""What predict classifies: image files named by path, folder (recursive)
or glob, or a TFDS split; each read into the network's input
(flaxdil.data.images.to_network_input), a failure per file kept as its
message instead of stopping the rest."""

from __future__ import annotations

import concurrent.futures
import glob
import os
from typing import Iterator, NamedTuple

import numpy as np

from flaxdil.errors import FlaxdilError

# What a folder is searched for (lower-case suffixes); a file named
# explicitly is tried whatever its suffix.
IMAGE_SUFFIXES = ('.png', '.jpg', '.jpeg', '.bmp', '.gif', '.tif', '.tiff',
                  '.webp', '.ppm', '.pgm')
# Decoding threads: Pillow releases the GIL while it decodes.
_READERS = 4


class Item(NamedTuple):
  """One input: its name, its pixels (None where it failed to read), the
  failure, and its label where the input is a labelled split."""
  name: str
  image: np.ndarray | None
  error: str | None = None
  label: int | None = None


def find_files(specs: list[str]) -> list[str]:
  """Image paths named by files, folders (searched recursively for
  IMAGE_SUFFIXES) and globs, in the order given, each folder's and glob's
  sorted; each path once. A spec that names nothing is an error."""
  found, seen = [], set()
  for spec in specs:
    if os.path.isdir(spec):
      paths = sorted(
          os.path.join(root, name)
          for root, _, names in os.walk(spec) for name in names
          if name.lower().endswith(IMAGE_SUFFIXES))
    elif os.path.exists(spec):
      paths = [spec]
    else:
      paths = sorted(p for p in glob.glob(spec, recursive=True)
                     if os.path.isfile(p))
      if not paths:
        raise FlaxdilError(
            f'{spec!r} is no file, folder or glob that matches a file. Fix: '
            'name image files, folders of them, or a quoted glob '
            "('photos/**/*.jpg').")
    for path in paths:
      if path not in seen:
        seen.add(path)
        found.append(path)
  if not found:
    raise FlaxdilError(
        f'no images in {", ".join(map(repr, specs))} (a folder is searched '
        f'for {", ".join(IMAGE_SUFFIXES)}). Fix: name image files or folders '
        'that hold some.')
  return found


def _read(path: str, shape, varying_size: bool) -> Item:
  from PIL import Image, UnidentifiedImageError
  from flaxdil.data.images import to_network_input
  try:
    with Image.open(path) as image:
      image.load()
      return Item(path, to_network_input(image, shape, varying_size))
  except UnidentifiedImageError:
    return Item(path, None, 'not an image Pillow can read')
  except Exception as e:  # noqa: BLE001  One bad file must not stop the rest:
    # Pillow's decoders raise OSError for truncated data, but also
    # SyntaxError, ValueError, struct.error or DecompressionBombError.
    return Item(path, None, f'{type(e).__name__}: {e}')


def read_files(paths: list[str], shape, varying_size: bool,
               batch_size: int) -> Iterator[list[Item]]:
  """The files' Items, batch_size at a time, in order."""
  with concurrent.futures.ThreadPoolExecutor(_READERS) as pool:
    for start in range(0, len(paths), batch_size):
      yield list(pool.map(lambda p: _read(p, shape, varying_size),
                          paths[start:start + batch_size]))


def read_split(config, split: str, batch_size: int) -> Iterator[list[Item]]:
  """A TFDS split of config's dataset (what --mode=eval reads), as labelled
  Items named DATASET/SPLIT[i]."""
  from flaxdil.config import rules
  from flaxdil.data import source
  rules.check_splits(config, {'--split': split})
  data = source.load_split(config, split)
  for start in range(0, len(data), batch_size):
    stop = min(start + batch_size, len(data))
    yield [Item(f'{config.dataset}/{split}[{i}]', data.images[i],
                label=int(data.labels[i])) for i in range(start, stop)]
