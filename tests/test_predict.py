"""--mode=predict: which files it finds, how any image becomes the
network's input, what it writes, what bad input does, and that its
backends agree."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT
from flaxdil.data import images as image_ops
from flaxdil.errors import FlaxdilError
from flaxdil.predict import inputs

_WEIGHT = 'dilated_net_d0_fast'


def _picture(path, size=(32, 32), mode='RGB', seed=0):
  rng = np.random.default_rng(seed)
  pixels = rng.integers(0, 256, (size[1], size[0], 3), np.uint8)
  Image.fromarray(pixels).convert(mode).save(path)
  return pixels


@pytest.fixture
def photos(tmp_path):
  """A folder of images of several kinds, and files that are not."""
  root = tmp_path / 'photos'
  (root / 'deeper' / 'deepest').mkdir(parents=True)
  _picture(root / 'a.png')
  _picture(root / 'deeper' / 'b.jpg', size=(200, 120), seed=1)
  _picture(root / 'deeper' / 'deepest' / 'c.png', mode='RGBA', seed=2)
  _picture(root / 'd.gif', mode='P', seed=3)
  _picture(root / 'e.bmp', mode='L', seed=4)
  good = open(root / 'a.png', 'rb').read()
  (root / 'truncated.png').write_bytes(good[:len(good) // 3])
  (root / 'empty.jpg').write_bytes(b'')
  (root / 'text.png').write_text('not an image')
  (root / 'notes.txt').write_text('skipped: not an image suffix')
  return root


def test_files_come_from_paths_folders_and_globs_each_once(photos):
  found = inputs.find_files([str(photos / 'a.png'), str(photos),
                             str(photos / '**' / '*.png')])
  names = [os.path.relpath(p, photos) for p in found]
  assert names[0] == 'a.png' and len(names) == len(set(names)) == 8
  assert 'notes.txt' not in names
  assert 'deeper/deepest/c.png' in names
  with pytest.raises(FlaxdilError, match='no file, folder or glob'):
    inputs.find_files([str(photos / 'nothing*.png')])
  (photos.parent / 'empty').mkdir()
  with pytest.raises(FlaxdilError, match='no images in'):
    inputs.find_files([str(photos.parent / 'empty')])


def test_any_image_becomes_the_network_s_input_as_evaluation_s_does():
  square = np.random.default_rng(0).integers(0, 256, (32, 32, 3), np.uint8)
  # The network's own size: used as it is, exactly.
  np.testing.assert_array_equal(
      image_ops.to_network_input(Image.fromarray(square), (32, 32, 3), False),
      square)
  wide = Image.fromarray(np.zeros((120, 200, 3), np.uint8)).convert('RGBA')
  assert image_ops.to_network_input(wide, (32, 32, 3), False).shape == (
      32, 32, 3)
  grey = Image.fromarray(square[..., 0])
  rgb = image_ops.to_network_input(grey, (32, 32, 3), False)
  assert rgb.shape == (32, 32, 3) and (rgb[..., 0] == rgb[..., 2]).all()
  assert image_ops.to_network_input(Image.fromarray(square), (16, 16, 1),
                                    True).shape == (16, 16, 1)
  # A dataset of varying size: evaluation's centre crop, exactly.
  big = np.random.default_rng(1).integers(0, 256, (90, 70, 3), np.uint8)
  np.testing.assert_array_equal(
      image_ops.to_network_input(Image.fromarray(big), (64, 64, 3), True),
      image_ops.centre_crop(big, 64))


def _predict(*args, cwd):
  return subprocess.run([sys.executable, str(ROOT / 'bin' / 'main.py'),
                         'predict', f'--weights={_WEIGHT}', *args],
                        capture_output=True, text=True, cwd=cwd)


@pytest.mark.slow
def test_predict_classifies_what_it_can_and_reports_the_rest(photos,
                                                             tmp_path):
  out = tmp_path / 'out'
  out.mkdir()
  before = set(os.listdir(tmp_path))
  result = _predict(str(photos), '--top_k=3', f'--output={out / "p.jsonl"}',
                    '--batch=4', cwd=tmp_path)
  assert result.returncode == 65, result.stderr  # Some inputs failed.
  records = [json.loads(line) for line in open(out / 'p.jsonl')]
  failed = {os.path.basename(r['input']): r['error'] for r in records
            if 'error' in r}
  assert set(failed) == {'truncated.png', 'empty.jpg', 'text.png'}
  for name in failed:
    assert f'{name}: ' in result.stderr
  classified = [r for r in records if 'top_k' in r]
  assert len(classified) == 5
  for r in classified:
    assert len(r['top_k']) == 3
    p = [t['probability'] for t in r['top_k']]
    assert p == sorted(p, reverse=True) and 0 < sum(p) <= 1 + 1e-6
  assert 'Classified 5 of 8 inputs' in result.stderr
  # Nothing written but --output.
  assert set(os.listdir(tmp_path)) == before
  assert os.listdir(out) == ['p.jsonl']

  # All good: exit 0; a CSV; a table on stdout.
  result = _predict(str(photos / 'a.png'), str(photos / 'e.bmp'),
                    f'--output={out / "p.csv"}', cwd=tmp_path)
  assert result.returncode == 0, result.stderr
  rows = list(csv.DictReader(open(out / 'p.csv')))
  assert [os.path.basename(r['input']) for r in rows] == ['a.png', 'e.bmp']
  assert rows[0]['class_1'] == classified[0]['top_k'][0]['class']

  # Nothing to classify: one line, exit 2, no output file.
  (tmp_path / 'none').mkdir()
  result = _predict(str(tmp_path / 'none'), f'--output={out / "x.jsonl"}',
                    cwd=tmp_path)
  assert result.returncode == 2 and 'no images in' in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1
  assert not (out / 'x.jsonl').exists()


@pytest.mark.slow
def test_the_backends_agree_on_the_test_split(shared_tfds_dir):
  pytest.importorskip('onnxruntime')
  from flaxdil import predict, pretrained
  from flaxdil.config.args import with_fields
  from flaxdil.predict import backends
  weights = pretrained.load(_WEIGHT)
  source = backends.from_weights(weights._replace(
      config=with_fields(weights.config, data_dir=shared_tfds_dir)))
  top1 = {}
  for backend in backends.BACKENDS:
    records = predict.classify(
        source, inputs.read_split(source.config, 'test[:300]', 100), backend,
        top_k=1, batch_size=100)
    assert len(records) == 300 and not any('error' in r for r in records)
    top1[backend] = np.array([r['top_k'][0]['index'] for r in records])
  # The float graph computes the network's logits (to float rounding);
  # int8 changes a few decisions.
  assert np.mean(top1['onnx'] == top1['jax']) >= 0.99
  assert np.mean(top1['int8'] == top1['jax']) >= 0.95


@pytest.mark.slow
def test_predict_from_a_workdir_and_its_own_export_only(tiny_config,
                                                        tmp_path, mock_cifar,
                                                        photos):
  from flaxdil.cli import modes
  from flaxdil.training import loop
  workdir = str(tmp_path / 'run')
  loop.train_and_evaluate(tiny_config, workdir)
  summary = modes.predict(tiny_config, workdir=workdir, split='test',
                          output=str(tmp_path / 'p.csv'), top_k=2)
  written = json.load(open(os.path.join(workdir, 'eval_test.json')))
  # The split's accuracy is evaluation's, from the same checkpoint.
  assert summary['inputs'] == 150
  assert summary['accuracy'] == pytest.approx(written['accuracy'])
  summary = modes.predict(tiny_config, workdir=workdir,
                          inputs=[str(photos / 'a.png')], output=os.devnull)
  assert summary['failed'] == 0
  with pytest.raises(FlaxdilError, match='no int8 export of that checkpoint'):
    modes.predict(tiny_config, workdir=workdir, inputs=[str(photos)],
                  backend='int8')
  with pytest.raises(FlaxdilError, match='one of the two'):
    modes.predict(tiny_config, workdir=workdir, weights=_WEIGHT,
                  inputs=[str(photos)])
  with pytest.raises(FlaxdilError, match='files, folders or globs'):
    modes.predict(tiny_config, workdir=workdir)
  # Without --output: the table, on stdout.
  from flaxdil import predict
  records = [{'input': 'a.png', 'top_k': [{'class': 'cat', 'index': 3,
                                           'probability': 0.5}]},
             {'input': 'b.png', 'error': 'truncated'}]
  assert predict.format_table(records) == (
      'a.png\tcat 0.500\nb.png\tERROR truncated\n')
