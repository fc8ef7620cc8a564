"""The weight file: one trained network in one self-describing file.

A weight file (NAME.flaxdil) is a msgpack document (flax.serialization):

  format            'flaxdil-weights', version 1
  config            the training config, as a workdir's config.json holds it
                    (without the data's location, which belongs to a machine)
  dataset           what turns images into the logits: name, num_classes,
                    image_shape, mean, std, and the class names by label
  provenance        where the weights come from: workdir, step, commit,
                    machine, test accuracy (see bin/release.py)
  variables         {'params', 'batch_stats'}: the weights evaluation uses
                    (the EMA where training kept one), stored as `dtype`
  variables_sha256  sha256 of `variables` as serialised, so a damaged
                    array is found in any copy, wherever it came from

float16 storage halves the file against float32; the accuracy the release
states is measured from the stored file (bin/release.py), not from the
float32 checkpoint it came from.
"""

from __future__ import annotations

import hashlib
import json

import jax
import ml_collections
import numpy as np
from flax import serialization

from flaxdil.config import defaults
from flaxdil.data.source import DatasetInfo
from flaxdil.errors import FlaxdilError
from flaxdil.workdir import files

FORMAT, VERSION = 'flaxdil-weights', 1
SUFFIX = '.flaxdil'
# Fields that say where a machine keeps its data: not part of a weight.
_MACHINE_FIELDS = ('data_dir', 'manual_dir', 'init_from')


class WeightsError(FlaxdilError):
  """A weight file cannot be read: missing, truncated, damaged or foreign."""


def sha256_of(path: str) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      digest.update(block)
  return digest.hexdigest()


def _variables_digest(variables: dict) -> str:
  return hashlib.sha256(serialization.msgpack_serialize(variables)).hexdigest()


def write(path: str, config: ml_collections.ConfigDict, info: DatasetInfo,
          class_names: list[str], variables: dict, provenance: dict,
          dtype: str = 'float16') -> str:
  """Writes a weight file atomically; returns its sha256."""
  stored = jax.tree_util.tree_map(
      lambda x: np.asarray(x).astype(dtype), variables)
  if not all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(stored)):
    raise WeightsError(f'some weights do not fit {dtype} (overflow to inf). '
                       'Fix: write the file with dtype=float32.')
  record = json.loads(config.to_json_best_effort())
  for field in _MACHINE_FIELDS:
    record[field] = defaults.FIELDS[field].default
  document = {
      'format': FORMAT, 'version': VERSION,
      'config': json.dumps(record, sort_keys=True),
      'dataset': json.dumps({
          'name': info.name, 'num_classes': info.num_classes,
          'image_shape': list(info.image_shape), 'mean': list(info.mean),
          'std': list(info.std), 'varying_size': info.varying_size,
          'class_names': list(class_names)}),
      'provenance': json.dumps(files.strict_json(provenance), sort_keys=True),
      'variables': stored,
      'variables_sha256': _variables_digest(stored),
  }
  data = serialization.msgpack_serialize(document)
  files.write_bytes_atomic(path, data)
  return hashlib.sha256(data).hexdigest()


def read(path: str) -> dict:
  """The weight file's contents, checked: {'config' (a ConfigDict), 'info'
  (DatasetInfo), 'class_names', 'provenance', 'variables' (float32)}.
  Anything unreadable is a WeightsError naming the file."""
  try:
    with open(path, 'rb') as f:
      data = f.read()
  except OSError as e:
    raise WeightsError(f'cannot read weight file {path!r} ({e.strerror}). '
                       'Fix: pass an existing file or a released weight\'s '
                       'name (flaxdil.pretrained.list()).') from None
  damaged = (f'weight file {path!r} is damaged or truncated ({len(data)} '
             'bytes)')
  fix = ('Fix: download or copy it again (or reinstall flaxdil for a '
         'shipped weight).')
  try:
    document = serialization.msgpack_restore(data)
  except Exception:  # msgpack's errors for truncated or garbled input.
    raise WeightsError(f'{damaged}: it does not parse. {fix}') from None
  if not isinstance(document, dict) or document.get('format') != FORMAT:
    raise WeightsError(f'{path!r} is not a flaxdil weight file. Fix: pass a '
                       f'{SUFFIX} file written by bin/release.py.')
  if document.get('version') != VERSION:
    raise WeightsError(f'{path!r} is version {document.get("version")} of the '
                       f'weight format; this flaxdil reads {VERSION}. Fix: '
                       'use the flaxdil that wrote it.')
  try:
    variables = document['variables']
    if _variables_digest(variables) != document['variables_sha256']:
      raise WeightsError(f'{damaged}: its weights do not match the checksum '
                         f'it carries. {fix}')
    config = defaults.from_record(json.loads(document['config']))
    dataset = json.loads(document['dataset'])
    provenance = json.loads(document['provenance'])
  except (KeyError, ValueError, TypeError) as e:
    raise WeightsError(f'{damaged}: {type(e).__name__} {e}. {fix}') from None
  class_names = dataset.pop('class_names')
  info = DatasetInfo(**{**dataset, 'image_shape': tuple(dataset['image_shape']),
                        'mean': tuple(dataset['mean']),
                        'std': tuple(dataset['std'])})
  variables = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32),
                                     variables)
  return {'config': config, 'info': info, 'class_names': class_names,
          'provenance': provenance, 'variables': variables}
