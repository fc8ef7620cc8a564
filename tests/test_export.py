"""--mode=export: ONNX, int8 ONNX and jax.export artifacts that compute what
--mode=eval computes, verified on the whole test split by the exporter."""

import importlib
import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from conftest import ROOT
from flaxdil.data import source
from flaxdil.errors import FlaxdilError
from flaxdil.export import artifacts, onnx_graph
from flaxdil.training import evaluation, loop


def _importable(name: str) -> bool:
  try:
    importlib.import_module(name)
    return True
  except ImportError:
    return False


# Every package the exporters import (requirements-export.txt): a test that
# exports skips unless all are there, whichever one is missing.
_EXPORTERS = ('onnx', 'onnxruntime')
needs_exporters = pytest.mark.skipif(
    not all(map(_importable, _EXPORTERS)),
    reason='pip install -r requirements-export.txt (onnx, onnxruntime)')


@pytest.mark.slow
@needs_exporters
def test_export_writes_verified_artifacts(tiny_config, tmp_path, mock_cifar):
  tiny_config.ema_decay = 0.9
  tiny_config.test_time_flip = True
  workdir = str(tmp_path / 'run')
  loop.train_and_evaluate(tiny_config, workdir)
  report = artifacts.export(tiny_config, workdir, latency_calls=5)
  out = os.path.join(workdir, 'export')
  assert sorted(os.listdir(out)) == ['model.jaxexport', 'model.onnx',
                                     'model_int8.onnx', 'report.json']
  assert json.load(open(os.path.join(out, 'report.json'))) == json.loads(
      json.dumps(report))
  assert not [d for d in os.listdir(workdir) if d.startswith('.export-tmp')]
  assert report['checkpoint']['weights'] == 'ema' and report['num_examples'] == 150
  written = json.load(open(os.path.join(workdir, 'eval_test.json')))
  assert report['checkpoint_accuracy'] == pytest.approx(written['accuracy'])
  for name in ('jax_jit', 'jax_export', 'onnx_float'):
    artifact = report['artifacts'][name]
    assert artifact['agreement_with_checkpoint'] == 1.0, name
    assert artifact['max_abs_logit_difference'] <= 1e-4, name
  assert 0.0 <= report['artifacts']['onnx_int8']['accuracy'] <= 1.0

  # Any batch size, uint8 in, the checkpoint's logits out.
  state, _, _, info, _ = evaluation.restore_state(tiny_config, workdir)
  want = jax.jit(artifacts.logits_fn(state, info, tiny_config))
  images = source.load_split(tiny_config, 'test').images
  import onnxruntime
  session = onnxruntime.InferenceSession(os.path.join(out, 'model.onnx'))
  from jax import export as jax_export
  exported = jax_export.deserialize(bytearray(
      open(os.path.join(out, 'model.jaxexport'), 'rb').read()))
  for batch in (1, 7):
    x = images[:batch]
    np.testing.assert_allclose(session.run(None, {'images': x})[0], want(x),
                               atol=1e-4)
    np.testing.assert_allclose(exported.call(x), want(x), atol=1e-5)


@needs_exporters
def test_export_of_a_workdir_without_checkpoints_is_a_clear_error(
    tiny_config, tmp_path):
  with pytest.raises(FlaxdilError, match='no checkpoints'):
    artifacts.export(tiny_config, str(tmp_path))
  assert not os.listdir(tmp_path)


def test_export_without_its_packages_says_what_to_install(
    tiny_config, tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # Import fails.
  with pytest.raises(FlaxdilError, match='pip install -r requirements-export.txt'):
    artifacts.export(tiny_config, str(tmp_path))


def onnx_and_jax_logits(config, info, model, state, images):
  """(the ONNX graph's logits, --mode=eval's) of `state` on `images`: the
  graph built in memory from the network's summary, as export builds it."""
  import onnxruntime
  from flaxdil.inspection import summary as model_summary
  summary = model_summary.summarize(model, info.image_shape)
  summary.update(model_summary.inference_spec(config, info))
  variables = jax.tree_util.tree_map(
      np.asarray, {'params': state.params, 'batch_stats': state.batch_stats})
  session = onnxruntime.InferenceSession(
      onnx_graph.build_onnx(summary, variables).SerializeToString())
  want = np.asarray(jax.jit(artifacts.logits_fn(state, info, config))(images))
  return session.run(None, {'images': images})[0], want


@pytest.mark.slow
@needs_exporters
@pytest.mark.parametrize('name', ['mobilenet_v1', 'squeezenet', 'googlenet',
                                  'vgg16'])
def test_the_onnx_graph_of_every_baseline_computes_its_logits(name):
  """Max pooling, concatenation, flattening and biased convolutions too,
  with BatchNorm statistics far from the identity."""
  from configs import baselines as baselines_config
  from flaxdil.training import steps
  from flaxdil.config import rules
  config = baselines_config.get_config(f'model={name},test_time_flip=True')
  info = rules.check_run(config)
  model = steps.create_model(config, info)
  state = steps.create_train_state(config, model, jax.random.key(0),
                                   info.image_shape, lambda step: 0.0)
  rng = np.random.default_rng(0)
  state = state.replace(batch_stats=jax.tree_util.tree_map(
      lambda s: rng.uniform(0.5, 1.5, s.shape).astype(np.float32),
      state.batch_stats))
  images = rng.integers(0, 256, (3, 32, 32, 3), np.uint8)
  got, want = onnx_and_jax_logits(config, info, model, state, images)
  np.testing.assert_allclose(got, want, rtol=1e-4,
                             atol=1e-5 * float(np.max(np.abs(want))))


@pytest.mark.slow
@pytest.mark.parametrize('missing', _EXPORTERS)
def test_this_file_skips_whichever_export_package_is_missing(tmp_path, missing):
  """Reported from a user: with onnxruntime installed but not onnx, the fast
  tier failed instead of skipping the export tests."""
  hidden = tmp_path / missing
  hidden.mkdir()
  (hidden / '__init__.py').write_text(
      f'raise ModuleNotFoundError("hidden", name={missing!r})')
  result = subprocess.run(
      [sys.executable, '-m', 'pytest', '-q', '-m', 'not slow', '-p',
       'no:cacheprovider', str(ROOT / 'tests' / 'test_export.py')],
      cwd=ROOT, capture_output=True, text=True, timeout=300,
      env=dict(os.environ, PYTHONPATH=str(tmp_path)))
  assert result.returncode == 0, result.stdout[-3000:]
  assert 'skipped' in result.stdout and 'failed' not in result.stdout


def _untrained_weight_file(config, path: str, provenance: dict,
                           **write_options) -> str:
  """A weight file at path of config's network as initialised (seed 0),
  with ten classes named '0'..'9' (write_options: weightfile.write's, such
  as storage); returns path."""
  from flaxdil import models
  from flaxdil.pretrained import weightfile
  info = source.dataset_info(config)
  variables = models.create_model(config, 10).init(
      jax.random.key(0), np.zeros((1, *info.image_shape), np.float32),
      train=False)
  weightfile.write(path, config, info, [str(i) for i in range(10)],
                   jax.tree_util.tree_map(np.asarray, variables), provenance,
                   **write_options)
  return path


@pytest.mark.slow
@needs_exporters
def test_a_released_weight_exports_into_a_new_directory(tiny_config, tmp_path,
                                                        mock_cifar):
  from flaxdil import pretrained
  from flaxdil.cli import modes
  path = _untrained_weight_file(tiny_config, str(tmp_path / 'tiny.flaxdil'),
                                {'step': 3})
  out = str(tmp_path / 'out')
  report = modes.export_model(None, out, weights=path)
  assert sorted(os.listdir(os.path.join(out, 'export'))) == [
      'model.jaxexport', 'model.onnx', 'model_int8.onnx', 'report.json']
  assert report['checkpoint']['step'] == 3
  # The float graph computes the stored weights' logits.
  assert report['artifacts']['onnx_float']['agreement_with_checkpoint'] == 1.0
  assert pretrained.load(path).provenance['step'] == 3


@pytest.mark.slow
@needs_exporters
def test_release_writes_a_weight_its_card_and_index_reading_the_test_split_once(
    tiny_config, tmp_path, mock_cifar, monkeypatch):
  """bin/release.py's work on a snapshot weight: the released file, its
  int8 ONNX, card and index entry, the stored weight's accuracy measured,
  and the test split read once for that and the export's checks."""
  from flaxdil import pretrained
  from flaxdil.experiments import release
  snapshot = _untrained_weight_file(
      tiny_config, str(tmp_path / 'tiny.flaxdil'),
      {'step': 3, 'num_params': 1, 'trained_commit': 'abc1234', 'cpu': 'test',
       'checkpoint_test_accuracy': 0.1}, storage='float32')
  reads, load_split = [], source.load_split

  def counted(config, split):
    reads.append(split)
    return load_split(config, split)

  monkeypatch.setattr(source, 'load_split', counted)
  out = tmp_path / 'weights'
  entry = release.release(snapshot, 'tiny_release', [], None, str(out))
  assert reads.count(tiny_config.test_split) == 1
  assert sorted(os.listdir(out)) == ['index.json', 'tiny_release.flaxdil',
                                     'tiny_release.int8.onnx',
                                     'tiny_release.md']
  assert json.load(open(out / 'index.json')) == {'tiny_release': entry}
  assert 0 <= entry['test_accuracy'] <= 1 and entry['step'] == 3
  assert pretrained.load(str(out / 'tiny_release.flaxdil'),
                         entry['sha256']).provenance['name'] == 'tiny_release'
  assert 'abc1234' in (out / 'tiny_release.md').read_text()
