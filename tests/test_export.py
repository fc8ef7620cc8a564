"""--mode=export: ONNX, int8 ONNX and jax.export artifacts that compute what
--mode=eval computes, verified on the whole test split by the exporter."""

import json
import os
import sys

import jax
import numpy as np
import pytest

from flaxdil import data, evaluation, train
from flaxdil.errors import FlaxdilError

onnxruntime = pytest.importorskip('onnxruntime')  # requirements-export.txt
from flaxdil import export  # noqa: E402


@pytest.mark.slow
def test_export_writes_verified_artifacts(tiny_config, tmp_path, mock_cifar):
  tiny_config.ema_decay = 0.9
  tiny_config.test_time_flip = True
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(tiny_config, workdir)
  report = export.export(tiny_config, workdir, latency_calls=5)
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
  state, _, pmapped = evaluation.restore_state(tiny_config, workdir)
  want = jax.jit(export.logits_fn(state, pmapped.info, True))
  images = data.load_split(tiny_config, 'test').images
  session = onnxruntime.InferenceSession(os.path.join(out, 'model.onnx'))
  from jax import export as jax_export
  exported = jax_export.deserialize(bytearray(
      open(os.path.join(out, 'model.jaxexport'), 'rb').read()))
  for batch in (1, 7):
    x = images[:batch]
    np.testing.assert_allclose(session.run(None, {'images': x})[0], want(x),
                               atol=1e-4)
    np.testing.assert_allclose(exported.call(x), want(x), atol=1e-5)


def test_export_of_a_workdir_without_checkpoints_is_a_clear_error(
    tiny_config, tmp_path):
  with pytest.raises(FlaxdilError, match='no checkpoints'):
    export.export(tiny_config, str(tmp_path))
  assert not os.listdir(tmp_path)


def test_export_without_its_packages_says_what_to_install(
    tiny_config, tmp_path, monkeypatch):
  monkeypatch.setitem(sys.modules, 'onnxruntime', None)  # Import fails.
  with pytest.raises(FlaxdilError, match='pip install -r requirements-export.txt'):
    export.export(tiny_config, str(tmp_path))
