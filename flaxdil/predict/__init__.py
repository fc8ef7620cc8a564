"""Classify one's own images with a trained network (--mode=predict).

  flaxdil predict --weights=dilated_net_d0_fast photos/ 'more/**/*.jpg'
  flaxdil --mode=predict --config=configs/cifar10.py --workdir=RUN \\
      --split=test --output=predictions.jsonl --backend=int8

Inputs are image files, folders (searched recursively), globs, or a TFDS
split of the network's dataset (--split). Each image is brought to the
network's input as evaluation brings its images
(flaxdil.data.images.to_network_input), in batches; the network is a
released weight (flaxdil.pretrained) or a workdir's best checkpoint, run
by JAX, ONNX Runtime, or ONNX Runtime on the int8 export (--backend).

Output: the top-k classes with their probabilities per image, as a table
on stdout, or into --output as JSONL (.jsonl), CSV (.csv) or the table
(any other name), written whole or not at all. A file that cannot be read
is reported on its own line (and in the output) and the rest are still
classified: the exit code is then EXIT_SOME_FAILED.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
import time

import numpy as np

from flaxdil.errors import FlaxdilError
from flaxdil.predict import backends, inputs
from flaxdil.workdir import files

EXIT_SOME_FAILED = 65  # EX_DATAERR: some inputs could not be read.
FORMATS = {'.jsonl': 'jsonl', '.csv': 'csv'}


def _softmax(logits: np.ndarray) -> np.ndarray:
  shifted = np.exp(logits - logits.max(-1, keepdims=True))
  return shifted / shifted.sum(-1, keepdims=True)


def _records(items, logits, class_names, top_k: int) -> list[dict]:
  probabilities = _softmax(np.asarray(logits, np.float64))
  records, row = [], 0
  for item in items:
    record = {'input': item.name}
    if item.label is not None:
      record['label'] = class_names[item.label]
    if item.error is not None:
      record['error'] = item.error
    else:
      p = probabilities[row]
      row += 1
      best = np.argsort(-p, kind='stable')[:top_k]
      record['top_k'] = [{'class': class_names[c], 'index': int(c),
                          'probability': round(float(p[c]), 6)}
                         for c in best]
    records.append(record)
  return records


def classify(source: backends.Source, batches, backend: str = 'jax',
             top_k: int = 5, batch_size: int = 64) -> list[dict]:
  """Records of every input in `batches` (lists of inputs.Item), in order:
  {'input', 'top_k': [{'class', 'index', 'probability'}], 'label' where
  known} or {'input', 'error'}."""
  logits_of = backends.logits_function(source, backend)
  shape = source.info.image_shape
  records = []
  for items in batches:
    good = [item.image for item in items if item.error is None]
    logits = np.zeros((0, source.info.num_classes), np.float32)
    if good:
      # Padded to one batch shape: one compilation (JAX) for every batch.
      images = np.zeros((batch_size, *shape), np.uint8)
      for start in range(0, len(good), batch_size):
        chunk = good[start:start + batch_size]
        images[:len(chunk)] = np.stack(chunk)
        logits = np.concatenate(
            [logits, np.asarray(logits_of(images))[:len(chunk)]])
    records += _records(items, logits, source.class_names, top_k)
  return records


def format_table(records: list[dict]) -> str:
  lines = []
  for r in records:
    if 'error' in r:
      lines.append(f'{r["input"]}\tERROR {r["error"]}')
      continue
    guesses = '  '.join(f'{t["class"]} {t["probability"]:.3f}'
                        for t in r['top_k'])
    known = f'\t(label {r["label"]})' if 'label' in r else ''
    lines.append(f'{r["input"]}\t{guesses}{known}')
  return '\n'.join(lines) + '\n'


def format_csv(records: list[dict], top_k: int) -> str:
  out = io.StringIO()
  writer = csv.writer(out)
  writer.writerow(['input', 'label', 'error'] + [
      f'{what}_{k}' for k in range(1, top_k + 1)
      for what in ('class', 'probability')])
  for r in records:
    row = [r['input'], r.get('label', ''), r.get('error', '')]
    for t in r.get('top_k', []):
      row += [t['class'], t['probability']]
    writer.writerow(row)
  return out.getvalue()


def write(records: list[dict], output: str | None, top_k: int) -> None:
  """To stdout (a table) or into `output`, atomically, by its suffix."""
  kind = FORMATS.get(os.path.splitext(output or '')[1].lower(), 'table')
  text = {'jsonl': lambda: ''.join(json.dumps(r) + '\n' for r in records),
          'csv': lambda: format_csv(records, top_k),
          'table': lambda: format_table(records)}[kind]()
  if output is None:
    print(text, end='', flush=True)
    return
  parent = os.path.dirname(os.path.abspath(output))
  if not os.path.isdir(parent):
    raise FlaxdilError(f'--output={output!r}: its directory does not exist. '
                       'Fix: create it or write elsewhere.')
  files.write_text_atomic(output, text)


def run(source: backends.Source, specs: list[str], split: str | None,
        output: str | None, backend: str = 'jax', top_k: int = 5,
        batch_size: int = 64) -> dict:
  """--mode=predict: classifies, writes, reports; returns a summary with
  the counts, the accuracy where labels are known, and files/s."""
  if bool(specs) == bool(split):
    raise FlaxdilError('--mode=predict needs image files, folders or globs '
                       '(after the flags), or --split=SPLIT of the '
                       'network\'s dataset: one of the two.')
  if not 1 <= top_k:
    raise FlaxdilError(f'--top_k={top_k} must be >= 1.')
  top_k = min(top_k, source.info.num_classes)
  if output is not None and os.path.isdir(output):
    raise FlaxdilError(f'--output={output!r} is a directory. Fix: name a '
                       'file (.jsonl, .csv, or anything else for a table).')
  start = time.perf_counter()
  if split:
    batches = inputs.read_split(source.config, split, batch_size)
  else:
    paths = inputs.find_files(specs)
    batches = inputs.read_files(paths, source.info.image_shape,
                                source.info.varying_size, batch_size)
  records = classify(source, batches, backend, top_k, batch_size)
  seconds = time.perf_counter() - start
  failed = [r for r in records if 'error' in r]
  for r in failed:
    print(f'error: {r["input"]}: {r["error"]}', file=sys.stderr,
          flush=True)
  write(records, output, top_k)
  summary = {'inputs': len(records), 'failed': len(failed),
             'seconds': seconds, 'inputs_per_sec': len(records) / seconds,
             'backend': backend, 'network': source.description}
  labelled = [r for r in records if 'label' in r and 'top_k' in r]
  if labelled:
    summary['accuracy'] = float(np.mean(
        [r['top_k'][0]['class'] == r['label'] for r in labelled]))
  return summary
