"""Fine-tuning: a new run's weights seeded from another run's
(config.init_from), and optionally only its classifier trained
(config.freeze_backbone).

The source is a training workdir (its best checkpoint, or WORKDIR@STEP),
or a released weight (flaxdil.pretrained: a name, a .flaxdil file or a
URL); from it come the weights evaluation uses (the EMA where kept).
Every parameter and BatchNorm statistic of the new network is taken from
the source where path and shape match. The classifier may differ in
shape (a dataset with another number of classes): it keeps its fresh
initialisation, and the run says so. Any other difference (a missing
layer, another width, another depth) is refused, naming the layer, before
the workdir is touched.

Only a new run is seeded: a resumed run restores its own checkpoint and
never reads the source again.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import ml_collections
import numpy as np

from flaxdil.errors import ConfigError
from flaxdil.training.optimizers import HEAD


class Seed(NamedTuple):
  """What a new run starts from, checked against its network."""
  source: str          # For the log and the record.
  variables: dict      # The source's {'params', 'batch_stats'}.
  loaded: int          # Arrays the new network takes from the source.
  fresh: list[str]     # Head arrays left at their initialisation (shapes).


def _source_variables(spec: str) -> tuple[str, dict]:
  from flaxdil import pretrained
  if pretrained.is_weight(spec):
    weights = pretrained.load(spec)
    return f'released weight {weights.name}', weights.variables
  workdir, _, step = spec.rpartition('@') if '@' in spec else (spec, '', '')
  if not os.path.isdir(os.path.join(workdir, 'checkpoints')):
    raise ConfigError(
        f'config.init_from={spec!r} is neither a training workdir (with '
        'checkpoints/), WORKDIR@STEP, nor a released weight (one of '
        f'{", ".join(pretrained.list())}, a .flaxdil file or a URL). Fix: '
        'point it at one.')
  try:
    step = int(step) if step else None
  except ValueError:
    raise ConfigError(f'config.init_from={spec!r}: the step after @ must be '
                      'an integer.') from None
  from flaxdil.config import defaults
  from flaxdil.training import evaluation, steps
  from flaxdil.workdir import record
  saved = record.read_config(workdir)
  if saved is None:
    raise ConfigError(f'config.init_from={spec!r} holds no config.json: not '
                      'a training workdir.')
  restored = evaluation.restore_state(defaults.from_record(saved), workdir,
                                      step)
  return (f'{workdir} (checkpoint of step {restored.step})',
          jax.tree_util.tree_map(np.asarray,
                                 steps.eval_variables(restored.state)))


def _path(keys) -> str:
  return '/'.join(str(getattr(k, 'key', k)) for k in keys)


def merge(fresh: dict, loaded: dict, source: str) -> tuple[dict, Seed]:
  """`fresh` (the new network's initial variables) with every array of
  matching path and shape taken from `loaded`, and the Seed that says
  what was taken; refuses any other difference outside the classifier,
  naming the layer."""
  flat_loaded = {
      f'{collection}/{_path(keys)}': value
      for collection in ('params', 'batch_stats')
      for keys, value in jax.tree_util.tree_flatten_with_path(
          loaded.get(collection, {}))[0]}
  used, fresh_arrays, merged = set(), [], {}
  for collection in ('params', 'batch_stats'):
    def take(keys, value, collection=collection):
      name = f'{collection}/{_path(keys)}'
      layer = _path(keys[:-1])
      source_value = flat_loaded.get(name)
      in_head = _path(keys[:1]) == HEAD
      if source_value is not None and source_value.shape == value.shape:
        used.add(name)
        return np.asarray(source_value).astype(value.dtype)
      if in_head:
        used.add(name)
        fresh_arrays.append(
            f'{name} {tuple(value.shape)}' + (
                f' (source {tuple(source_value.shape)})'
                if source_value is not None else ''))
        return value
      if source_value is None:
        raise ConfigError(
            f'config.init_from: {source} has no {name} (layer {layer!r}): '
            'it is another network. Fix: fine-tune from weights of the same '
            'model, widths, strides and depth.')
      raise ConfigError(
          f'config.init_from: layer {layer!r} has shape '
          f'{tuple(value.shape)} here but {tuple(source_value.shape)} in '
          f'{source} ({name}). Fix: use the config of the source network; '
          'only the classifier may differ (another number of classes).')
    merged[collection] = jax.tree_util.tree_map_with_path(
        take, fresh.get(collection, {}))
  unused = sorted(set(flat_loaded) - used)
  if unused:
    raise ConfigError(
        f'config.init_from: {source} has layers this network lacks (first: '
        f'{unused[0]}; {len(unused)} arrays). Fix: use the config of the '
        'source network.')
  return merged, Seed(source, loaded, len(used) - len(fresh_arrays),
                      fresh_arrays)


def prepare(config: ml_collections.ConfigDict, model, image_shape) -> Seed:
  """Loads config.init_from and checks it against the network `model`
  builds (shapes only: nothing is initialised here)."""
  from flaxdil.training import steps
  description, loaded = _source_variables(config.init_from)
  abstract = steps.abstract_train_state(config, model, image_shape)
  shapes = {'params': abstract.params, 'batch_stats': abstract.batch_stats}
  zeros = jax.tree_util.tree_map(lambda s: np.zeros(s.shape, s.dtype), shapes)
  _, seed = merge(zeros, loaded, description)
  return seed


def apply(state, seed: Seed):
  """The fresh train state with the seed's arrays in place (the head's
  fresh ones kept from `state`); the EMA, where kept, starts from them."""
  merged, _ = merge({'params': state.params, 'batch_stats': state.batch_stats},
                    seed.variables, seed.source)
  merged = jax.tree_util.tree_map(jax.numpy.asarray, merged)
  ema = dict(merged) if state.ema is not None else None
  return state.replace(params=merged['params'],
                       batch_stats=merged['batch_stats'], ema=ema)


def describe(seed: Seed) -> str:
  return (f'Initialised from {seed.source}: {seed.loaded} arrays loaded'
          + (f'; re-initialised (shape differs or absent): '
             f'{", ".join(seed.fresh)}' if seed.fresh else '') + '.')
