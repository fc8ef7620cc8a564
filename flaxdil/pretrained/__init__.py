"""Released weights: trained networks that ship with flaxdil, and any weight
file written the same way.

  import flaxdil.pretrained as pretrained
  pretrained.list()                       # the shipped weights' names
  weights = pretrained.load('dilated_net_d0_fast')
  logits = weights.model().apply(weights.variables, images, train=False)

`load` takes a shipped weight's name, a local .flaxdil file or an http(s)
URL of one (downloaded once into $FLAXDIL_CACHE, default
~/.cache/flaxdil). Every load is verified: a shipped weight against the
sha256 in weights/index.json, any file against the checksum of the
weights it carries, a URL against `sha256=` where given. What each weight
is, how well it does and how to reproduce it is its model card,
weights/NAME.md (`card(name)`).

The images a network takes are uint8 [batch, H, W, C] after normalisation
((pixel - mean) / std, `Pretrained.normalize`); `flaxdil.predict` does all
of it for image files.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import urllib.parse
import urllib.request
from typing import NamedTuple

import ml_collections
import numpy as np

from flaxdil.data.source import DatasetInfo
from flaxdil.pretrained import weightfile
from flaxdil.pretrained.weightfile import WeightsError

__all__ = ['list', 'load', 'card', 'Pretrained', 'WeightsError', 'index']

WEIGHTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'weights')
INDEX = os.path.join(WEIGHTS_DIR, 'index.json')


def index() -> dict:
  """{name: entry} of the shipped weights (weights/index.json): file,
  sha256, size, test accuracy, card and int8 ONNX export."""
  with open(INDEX) as f:
    return json.load(f)


def list() -> builtins.list[str]:  # noqa: A001  timm's and torch.hub's name.
  """The names of the weights that ship with flaxdil."""
  return sorted(index())


def card(name: str) -> str:
  """The model card of a shipped weight (markdown)."""
  entry = _entry(name)
  with open(os.path.join(WEIGHTS_DIR, entry['card'])) as f:
    return f.read()


class Pretrained(NamedTuple):
  """A loaded weight: what the network is, and its variables (float32)."""
  name: str
  path: str
  config: ml_collections.ConfigDict
  info: DatasetInfo
  class_names: builtins.list[str]
  provenance: dict
  variables: dict     # {'params', 'batch_stats'}, numpy float32.

  def model(self, axis_name: str | None = None):
    """The Flax module of the network (unbound)."""
    from flaxdil import models
    return models.create_model(self.config, self.info.num_classes, axis_name,
                               input_size=self.info.image_shape[0])

  def backbone(self):
    """(module, variables): the network without its head
    (flaxdil.models.DilatedBackbone) and its trained variables, for
    another Flax module to call (docs/deploy.md has an example)."""
    from flaxdil import models
    module = models.create_backbone(self.config,
                                    input_size=self.info.image_shape[0])
    variables = {'params': {k: v for k, v in self.variables['params'].items()
                            if k != 'classifier'},
                 'batch_stats': self.variables['batch_stats']}
    return module, variables

  def normalize(self, images) -> np.ndarray:
    """uint8 images → what the network's first layer takes."""
    from flaxdil.data import augment
    return augment.normalize(images, self.info.mean, self.info.std)

  def onnx_int8(self) -> str | None:
    """The path of the shipped int8 ONNX export, where there is one."""
    entry = index().get(self.name, {})
    return (os.path.join(WEIGHTS_DIR, entry['onnx_int8'])
            if entry.get('onnx_int8') else None)


def _entry(name: str) -> dict:
  shipped = index()
  if name not in shipped:
    raise WeightsError(f'no released weight is named {name!r}. Fix: use one '
                       f'of {", ".join(sorted(shipped))}, or a .flaxdil file '
                       'or URL.')
  return shipped[name]


def _cache_dir() -> str:
  return os.environ.get('FLAXDIL_CACHE',
                        os.path.join(os.path.expanduser('~'), '.cache',
                                     'flaxdil'))


def _download(url: str) -> str:
  """The URL's file in the cache (downloaded once, atomically)."""
  name = os.path.basename(urllib.parse.urlparse(url).path) or 'weights'
  tag = hashlib.sha256(url.encode()).hexdigest()[:12]
  path = os.path.join(_cache_dir(), 'weights', f'{tag}-{name}')
  if os.path.exists(path):
    return path
  os.makedirs(os.path.dirname(path), exist_ok=True)
  temporary = f'{path}.part-{os.getpid()}'
  try:
    with urllib.request.urlopen(url, timeout=60) as response, \
        open(temporary, 'wb') as f:
      for block in iter(lambda: response.read(1 << 20), b''):
        f.write(block)
    os.replace(temporary, path)
  except OSError as e:
    raise WeightsError(f'cannot download {url!r} ({e}). Fix: check the URL '
                       'and the network, or download it and pass the '
                       'file.') from None
  finally:
    if os.path.exists(temporary):
      os.remove(temporary)
  return path


def is_weight(spec: str) -> bool:
  """Whether `spec` names a weight (a shipped name, a .flaxdil file or a
  URL), as against a training workdir."""
  return (spec in index() or spec.startswith(('http://', 'https://'))
          or spec.endswith(weightfile.SUFFIX))


def load(name_or_path: str, sha256: str | None = None) -> Pretrained:
  """A shipped weight by name, a .flaxdil file, or an http(s) URL of one;
  verified (see the module's doc). sha256: the file's expected checksum
  (a shipped weight's is known already)."""
  name, path = name_or_path, name_or_path
  shipped = index()
  if name_or_path in shipped:
    entry = shipped[name_or_path]
    path, sha256 = os.path.join(WEIGHTS_DIR, entry['file']), entry['sha256']
  elif name_or_path.startswith(('http://', 'https://')):
    path = _download(name_or_path)
    name = os.path.basename(path).split('-', 1)[1]
  if sha256 is not None and os.path.isfile(path):
    actual = weightfile.sha256_of(path)
    if actual != sha256:
      raise WeightsError(
          f'weight file {path!r} is damaged or not the one released: sha256 '
          f'{actual[:16]}…, expected {sha256[:16]}…. Fix: download or copy '
          'it again (or reinstall flaxdil for a shipped weight).')
  contents = weightfile.read(path)
  if name == path:
    name = os.path.splitext(os.path.basename(path))[0]
  return Pretrained(name=name, path=os.path.abspath(path), **contents)
