"""What using a trained network costs (bin/bench_predict.py): predict end
to end on the test split written out as PNG files, per backend; batch-1
latency per backend; and the installed package with and without its
weights.

End to end is the command a user runs, `python -m flaxdil predict`, in a
subprocess: process start, imports, finding and decoding the files,
compiling (JAX), classifying and writing JSONL. Its files/s is the
files over the process's wall time; the command's own line (files over
the time from finding the files to the last record) is reported beside it.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

from flaxdil import timing
from flaxdil.predict import backends


def write_pngs(config, split: str, directory: str) -> int:
  """The split's images as DIRECTORY/NNNNN_CLASS.png (once: kept where
  all are there already); returns how many."""
  from PIL import Image
  from flaxdil.data import source
  data = source.load_split(config, split)
  names = source.class_names(config)
  os.makedirs(directory, exist_ok=True)
  if len([n for n in os.listdir(directory) if n.endswith('.png')]) == len(data):
    return len(data)
  for i, (image, label) in enumerate(zip(data.images, data.labels)):
    Image.fromarray(image).save(
        os.path.join(directory, f'{i:05d}_{names[label]}.png'))
  return len(data)


def end_to_end(weights: str, directory: str, backend: str, batch: int
               ) -> dict:
  """One `flaxdil predict` over the folder, timed from process start."""
  with tempfile.TemporaryDirectory() as out:
    output = os.path.join(out, 'predictions.jsonl')
    start = time.perf_counter()
    result = subprocess.run(
        [sys.executable, '-m', 'flaxdil', 'predict', f'--weights={weights}',
         directory, f'--output={output}', f'--backend={backend}',
         f'--batch={batch}'], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if result.returncode:
      raise RuntimeError(f'predict failed ({result.returncode}): '
                         f'{result.stderr[-2000:]}')
    with open(output) as f:
      records = sum(1 for _ in f)
  line = re.search(r'Classified (\d+) of (\d+) inputs .* in ([\d.]+) s',
                   result.stderr)
  return {'backend': backend, 'files': records, 'wall_seconds': wall,
          'files_per_sec': records / wall,
          'command_seconds': float(line.group(3)),
          'command_files_per_sec': records / float(line.group(3))}


def batch1_latency_ms(source: backends.Source, backend: str, image,
                      calls: int, threads: int | None = None) -> float:
  """The median time of one image through the backend's logits function
  (the network with normalisation and test-time flip)."""
  run = backends.logits_function(source, backend, threads)
  run(image)  # Compiles (JAX) or allocates.
  return 1e3 * timing.median_seconds(lambda: run(image), calls)


def package_sizes(checkout: str) -> dict:
  """The wheel `pip wheel` builds from the checkout, and what of it is
  the shipped weights (compressed, as pip installs them)."""
  with tempfile.TemporaryDirectory() as out:
    subprocess.run([sys.executable, '-m', 'pip', 'wheel', '--no-deps',
                    '--quiet', '-w', out, checkout], check=True,
                   capture_output=True)
    (wheel,) = [os.path.join(out, n) for n in os.listdir(out)
                if n.endswith('.whl')]
    with zipfile.ZipFile(wheel) as z:
      infos = z.infolist()
    weights = [i for i in infos if '/pretrained/weights/' in i.filename]
    return {
        'wheel_bytes': os.path.getsize(wheel),
        'installed_bytes': sum(i.file_size for i in infos),
        'weights_installed_bytes': sum(i.file_size for i in weights),
        'weights_in_wheel_bytes': sum(i.compress_size for i in weights),
        'installed_without_weights_bytes': sum(
            i.file_size for i in infos if i not in weights),
    }


def one_image(directory: str) -> np.ndarray:
  from PIL import Image
  first = sorted(n for n in os.listdir(directory) if n.endswith('.png'))[0]
  return np.asarray(Image.open(os.path.join(directory, first)))[None]
