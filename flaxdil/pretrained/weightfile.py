"""The weight file: one trained network in one self-describing file.

A weight file (NAME.flaxdil) is a msgpack document (flax.serialization):

  format            'flaxdil-weights', version 1
  config            the training config, as a workdir's config.json holds it
                    (without the data's location, which belongs to a machine)
  dataset           what turns images into the logits: name, num_classes,
                    image_shape, mean, std, and the class names by label
  provenance        where the weights come from: workdir, step, commit,
                    machine, test accuracy (see bin/release.py)
  storage           how `variables` is stored: 'float32', 'float16' or
                    'int8' (version 2; version 1 files are float16 or float32)
  variables         {'params', 'batch_stats'}: the weights evaluation uses
                    (the EMA where training kept one). float16/float32: the
                    arrays. int8: zlib-compressed msgpack of the arrays, each
                    kernel of fan-in >= 64 as {'int8', 'scale'}: symmetric,
                    one float32 scale per output channel (the last axis),
                    every other array float16
  variables_sha256  sha256 of `variables` as serialised, so a damaged
                    array is found in any copy, wherever it came from

float16 halves the file against float32, int8 quarters it (3.0 MB for the
paper's network, against 6.2 MB: four released weights with their int8 ONNX
exports fit the 25 MB the repository allows them). Readers get float32
either way. The accuracy a release states is measured from the stored file
(bin/release.py), not from the float32 checkpoint it came from.
"""

from __future__ import annotations

import hashlib
import json
import zlib

import jax
import ml_collections
import numpy as np
from flax import serialization

from flaxdil.config import defaults
from flaxdil.data.source import DatasetInfo
from flaxdil.errors import FlaxdilError
from flaxdil.workdir import files

FORMAT, VERSION = 'flaxdil-weights', 2
# The storage each version may hold (version 1 predates int8).
STORAGE = {1: ('float16', 'float32'), 2: ('float16', 'float32', 'int8')}
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


# int8 storage quantizes the kernels whose output channels each sum at least
# this many inputs; smaller ones (the depthwise 3x3 filters, the first
# pointwise layers) stay float16: they are a few kB, and quantizing them
# cost the hour-long δ = 0 weights 0.14 of the 0.18 points all-int8 lost
# (86.43 against 86.61 %; 86.57 % with them in float16).
INT8_MIN_FAN_IN = 64


def _quantize(x: np.ndarray):
  """A kernel of fan-in >= INT8_MIN_FAN_IN as int8 with one scale per
  output channel (the last axis), so that the largest weight of each
  channel is ±127; any other array float16."""
  if x.ndim < 2 or np.prod(x.shape[:-1]) < INT8_MIN_FAN_IN:
    return x.astype(np.float16)
  largest = np.max(np.abs(x.reshape(-1, x.shape[-1])), axis=0)
  scale = np.where(largest > 0, largest / 127, 1).astype(np.float32)
  return {'int8': np.clip(np.round(x / scale), -127, 127).astype(np.int8),
          'scale': scale}


def _dequantize(stored) -> np.ndarray:
  if isinstance(stored, dict):
    return stored['int8'].astype(np.float32) * stored['scale']
  return np.asarray(stored, np.float32)


def _stored_variables(variables: dict, storage: str):
  """`variables` as the file holds them (see the module's doc)."""
  if storage == 'int8':
    quantized = jax.tree_util.tree_map(_quantize, variables)
    return zlib.compress(serialization.msgpack_serialize(quantized), 9)
  return jax.tree_util.tree_map(lambda x: x.astype(storage), variables)


def _read_variables(stored, storage: str) -> dict:
  if storage == 'int8':
    quantized = serialization.msgpack_restore(zlib.decompress(stored))
    return jax.tree_util.tree_map(_dequantize, quantized,
                                  is_leaf=lambda x: isinstance(x, dict)
                                  and 'int8' in x)
  return jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), stored)


def write(path: str, config: ml_collections.ConfigDict, info: DatasetInfo,
          class_names: list[str], variables: dict, provenance: dict,
          storage: str = 'float16') -> str:
  """Writes a weight file atomically; returns its sha256. storage:
  'float32', 'float16' or 'int8' (see the module's doc)."""
  if storage not in STORAGE[VERSION]:
    raise WeightsError(f'unknown weight storage {storage!r}. Fix: one of '
                       f'{", ".join(STORAGE[VERSION])}.')
  variables = jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32),
                                     variables)
  if not all(np.all(np.isfinite(x.astype(np.float16 if storage == 'float16'
                                         else np.float32)))
             for x in jax.tree_util.tree_leaves(variables)):
    raise WeightsError(f'some weights are not finite as {storage} (overflow '
                       'to inf, or NaN). Fix: write float16 weights with '
                       'storage=float32 or int8; retrain a NaN run.')
  stored = _stored_variables(variables, storage)
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
      'storage': storage,
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
  version = document.get('version')
  if version not in STORAGE:
    raise WeightsError(f'{path!r} is version {version} of the weight format; '
                       f'this flaxdil reads {", ".join(map(str, STORAGE))}. '
                       'Fix: use the flaxdil that wrote it.')
  try:
    variables = document['variables']
    if _variables_digest(variables) != document['variables_sha256']:
      raise WeightsError(f'{damaged}: its weights do not match the checksum '
                         f'it carries. {fix}')
    # Version 1 files did not name their storage: float16 or float32
    # arrays, read the same way.
    storage = document.get('storage', 'float16')
    if storage not in STORAGE[version]:
      raise ValueError(f'storage {storage!r}')
    variables = _read_variables(variables, storage)
    config = defaults.from_record(json.loads(document['config']))
    dataset = json.loads(document['dataset'])
    provenance = json.loads(document['provenance'])
  except (KeyError, ValueError, TypeError) as e:
    raise WeightsError(f'{damaged}: {type(e).__name__} {e}. {fix}') from None
  except zlib.error:
    raise WeightsError(f'{damaged}: its weights do not decompress. {fix}'
                       ) from None
  class_names = dataset.pop('class_names')
  info = DatasetInfo(**{**dataset, 'image_shape': tuple(dataset['image_shape']),
                        'mean': tuple(dataset['mean']),
                        'std': tuple(dataset['std'])})
  return {'config': config, 'info': info, 'class_names': class_names,
          'provenance': provenance, 'variables': variables}
