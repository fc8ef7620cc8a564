"""Released weights: the weight file's round trip and its checks, the
shipped weights (checksums, size, what their cards state), loading by URL,
and --mode=inspect on a released weight."""

import functools
import http.server
import json
import os
import subprocess
import sys
import threading

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import ROOT, load_config
from flaxdil import models, pretrained
from flaxdil.data.source import DatasetInfo
from flaxdil.pretrained import weightfile

_INFO = DatasetInfo('cifar10', 10, (32, 32, 3), (125.3, 123.0, 113.9),
                    (63.0, 62.1, 66.7))
_CLASSES = [f'class {i}' for i in range(10)]


def _tiny_variables(config):
  model = models.create_model(config, 10)
  variables = jax.jit(lambda key: model.init(  # One program.
      key, jnp.zeros((1, 32, 32, 3)), train=False))(jax.random.key(0))
  return model, jax.tree_util.tree_map(np.asarray, variables)


@pytest.fixture
def weight_file(tmp_path):
  config = load_config('tiny')
  config.data_dir = '/somewhere/on/my/machine'
  _, variables = _tiny_variables(config)
  path = str(tmp_path / 'tiny.flaxdil')
  sha = weightfile.write(path, config, _INFO, _CLASSES, variables,
                         {'step': 7, 'note': 'test'})
  return path, sha, config, variables


def test_a_weight_file_round_trips_as_float16(weight_file):
  path, sha, config, variables = weight_file
  loaded = pretrained.load(path, sha)
  assert loaded.name == 'tiny' and loaded.class_names == _CLASSES
  assert loaded.info == _INFO and loaded.provenance['step'] == 7
  # The machine's data location is not part of a weight.
  assert loaded.config.data_dir is None
  assert tuple(loaded.config.widths) == tuple(config.widths)
  for stored, original in zip(jax.tree_util.tree_leaves(loaded.variables),
                              jax.tree_util.tree_leaves(variables)):
    assert stored.dtype == np.float32
    np.testing.assert_array_equal(stored, original.astype(np.float16))
  # The loaded network runs, and its logits are the stored weights'.
  images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), np.uint8)
  logits = loaded.model().apply(loaded.variables, loaded.normalize(images),
                                train=False)
  assert logits.shape == (2, 10)
  # Its backbone holds the same parameters without the head.
  backbone, backbone_variables = loaded.backbone()
  assert 'classifier' not in backbone_variables['params']
  features = backbone.apply(backbone_variables, loaded.normalize(images))
  head = loaded.variables['params']['classifier']
  np.testing.assert_allclose(
      features['pooled'] @ head['kernel'] + head['bias'], logits, rtol=1e-5,
      atol=1e-5)
  assert features['block1'].shape[:3] == (2, 32, 32)


def test_int8_storage_keeps_each_kernel_within_half_a_step(tmp_path):
  config = load_config('tiny', 'widths=8:64:128')  # Fan-ins of 8, 64, 128.
  _, variables = _tiny_variables(config)
  path = str(tmp_path / 'tiny8.flaxdil')
  sha = weightfile.write(path, config, _INFO, _CLASSES, variables,
                         {'step': 7}, storage='int8')
  loaded = pretrained.load(path, sha)
  # One byte a kernel weight against float16's two.
  half = str(tmp_path / 'tiny16.flaxdil')
  weightfile.write(half, config, _INFO, _CLASSES, variables, {'step': 7})
  quantized = lambda x: (x.ndim >= 2 and np.prod(x.shape[:-1])
                         >= weightfile.INT8_MIN_FAN_IN)
  kernels = sum(x.size for x in jax.tree_util.tree_leaves(variables)
                if quantized(x))
  assert kernels > 0.5 * sum(x.size for x in jax.tree_util.tree_leaves(
      variables))
  assert os.path.getsize(path) < os.path.getsize(half) - 0.9 * kernels
  flat = jax.tree_util.tree_leaves_with_path(variables)
  for (key, original), stored in zip(
      flat, jax.tree_util.tree_leaves(loaded.variables)):
    assert stored.dtype == np.float32 and stored.shape == original.shape
    if quantized(original):  # One scale per output channel.
      step = np.abs(original).reshape(-1, original.shape[-1]).max(0) / 127
      assert np.all(np.abs(stored - original) <= step / 2 + 1e-7), key
      assert np.any(stored != original)
    else:
      np.testing.assert_array_equal(stored, original.astype(np.float16))
  # A flipped bit inside the compressed weights is caught by the checksum.
  data = bytearray(open(path, 'rb').read())
  data[len(data) // 2] ^= 0xFF
  (tmp_path / 'bad8.flaxdil').write_bytes(bytes(data))
  with pytest.raises(pretrained.WeightsError, match='damaged'):
    pretrained.load(str(tmp_path / 'bad8.flaxdil'))
  with pytest.raises(pretrained.WeightsError, match='unknown weight storage'):
    weightfile.write(path, config, _INFO, _CLASSES, variables, {},
                     storage='int4')


def test_a_damaged_truncated_or_foreign_file_is_one_clear_error(
    weight_file, tmp_path):
  path, sha, _, _ = weight_file
  data = open(path, 'rb').read()
  truncated = tmp_path / 'truncated.flaxdil'
  truncated.write_bytes(data[:len(data) // 2])
  with pytest.raises(pretrained.WeightsError, match='does not parse'):
    pretrained.load(str(truncated))
  flipped = bytearray(data)
  flipped[-100] ^= 0xFF  # Inside the last array's bytes.
  damaged = tmp_path / 'damaged.flaxdil'
  damaged.write_bytes(bytes(flipped))
  with pytest.raises(pretrained.WeightsError, match='do not match the checksum'):
    pretrained.load(str(damaged))
  with pytest.raises(pretrained.WeightsError, match='not the one released'):
    pretrained.load(path, sha256='0' * 64)
  foreign = tmp_path / 'foreign.flaxdil'
  from flax import serialization
  foreign.write_bytes(serialization.msgpack_serialize({'a': 1}))
  with pytest.raises(pretrained.WeightsError, match='not a flaxdil weight'):
    pretrained.load(str(foreign))
  with pytest.raises(pretrained.WeightsError, match='no released weight'):
    pretrained.card('no_such_weight')
  with pytest.raises(pretrained.WeightsError, match='cannot read'):
    pretrained.load(str(tmp_path / 'missing.flaxdil'))


def test_a_weight_loads_from_a_url_once(weight_file, tmp_path, monkeypatch):
  path, sha, _, _ = weight_file
  monkeypatch.setenv('FLAXDIL_CACHE', str(tmp_path / 'cache'))
  handler = functools.partial(http.server.SimpleHTTPRequestHandler,
                              directory=os.path.dirname(path))
  handler.log_message = lambda *a: None
  server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
  threading.Thread(target=server.serve_forever, daemon=True).start()
  try:
    url = f'http://127.0.0.1:{server.server_port}/tiny.flaxdil'
    loaded = pretrained.load(url, sha)
    assert loaded.name == 'tiny.flaxdil' and loaded.provenance['step'] == 7
    cached = os.listdir(tmp_path / 'cache' / 'weights')
    assert len(cached) == 1 and cached[0].endswith('-tiny.flaxdil')
    with pytest.raises(pretrained.WeightsError, match='cannot download'):
      pretrained.load(f'http://127.0.0.1:{server.server_port}/missing.flaxdil')
  finally:
    server.shutdown()


def test_the_shipped_weights_are_intact_small_and_carded():
  index = pretrained.index()
  assert pretrained.list() == sorted(index) and len(index) >= 2
  total = 0
  for name, entry in index.items():
    weights = pretrained.load(name)  # Checks the file's sha256.
    assert weights.info.num_classes == len(weights.class_names) == 10
    onnx = weights.onnx_int8()
    assert weightfile.sha256_of(onnx) == entry['onnx_int8_sha256']
    total += os.path.getsize(weights.path) + os.path.getsize(onnx)
    card = pretrained.card(name)
    # The card states the figures the index holds, and how to reproduce.
    assert entry['sha256'] in card
    assert f'{entry["test_accuracy"]:.2%}' in card
    assert 'JPEG-q75' in card and 'Table 2' in card and 'bin/release.py' in card
    n = sum(x.size for x in jax.tree_util.tree_leaves(
        weights.variables['params']))
    assert n == entry['num_params']
  assert total <= 25e6  # The budget for every shipped weight.


@pytest.mark.slow
def test_a_shipped_weight_scores_what_its_card_says(shared_tfds_dir):
  """The stored file's accuracy on 2,000 of the 10,000 test images the card
  measured it on: within 3 points (three standard errors of a 2,000-image
  sample; the whole split takes 20 s more, bin/release.py measures it)."""
  from flaxdil.data import source
  from flaxdil.experiments import release
  from flaxdil.training import evaluation
  name = 'dilated_net_d0_fast'
  weights = pretrained.load(name)
  config = weights.config
  config.data_dir = shared_tfds_dir
  config.test_split = 'test[:2000]'
  accuracy = release._accuracy(evaluation.from_weights(weights).state,
                              weights.info, config,
                              source.load_split(config, config.test_split))
  assert accuracy == pytest.approx(pretrained.index()[name]['test_accuracy'],
                                   abs=0.03)


@pytest.mark.slow
def test_inspect_takes_a_released_weight_without_a_config():
  result = subprocess.run(
      [sys.executable, str(ROOT / 'bin' / 'main.py'), '--mode=inspect',
       '--weights=dilated_net_d2_fast', '--json'],
      capture_output=True, text=True, cwd='/')
  assert result.returncode == 0, result.stderr
  summary = json.loads(result.stdout)
  assert summary['total_params'] == pretrained.index()[
      'dilated_net_d2_fast']['num_params']
  assert summary['released_weight'] == 'dilated_net_d2_fast'
  assert summary['dilation'] == 2
  missing = subprocess.run(
      [sys.executable, str(ROOT / 'bin' / 'main.py'), '--mode=inspect'],
      capture_output=True, text=True)
  assert missing.returncode == 2
  assert '--config=FILE' in missing.stderr and '--weights' in missing.stderr
