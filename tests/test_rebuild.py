"""The inspection JSON describes the whole computation: a plain-NumPy
rebuild from it and the checkpoint's arrays computes flaxdil's logits."""

import json
import math
import os

import jax
import numpy as np
import pytest

from flaxdil.cli import modes
from flaxdil.data import augment, source
from flaxdil.training import evaluation, loop


def _node(tree, name):
  for key in name.split('/'):
    tree = tree[key]
  return tree


def _depthwise(x, kernel, stride, rate, pad):
  n, h, w, c = x.shape
  out_h, out_w = math.ceil(h / stride), math.ceil(w / stride)
  padded = np.zeros((n, h + 2 * pad + stride * out_h, w + 2 * pad + stride * out_w, c))
  padded[:, pad:pad + h, pad:pad + w] = x
  y = np.zeros((n, out_h, out_w, c))
  for a in range(kernel.shape[0]):
    for b in range(kernel.shape[1]):
      rows = slice(a * rate, a * rate + stride * out_h, stride)
      cols = slice(b * rate, b * rate + stride * out_w, stride)
      y += padded[:, rows, cols] * kernel[a, b, 0]
  return y


def rebuild(summary, variables, images):
  """Logits of uint8 images, from the summary's layers alone."""
  spec = summary['input']
  x = (images.astype(np.float64) - spec['normalization']['mean']) / (
      spec['normalization']['std'])

  def forward(x):
    outputs = {'input': x}
    for layer in summary['layers']:
      (layer_input,) = [outputs[name] for name in layer['inputs']]
      kind, name = layer['kind'], layer['name']
      if kind == 'depthwise_conv':
        y = _depthwise(layer_input, _node(variables['params'], name)['kernel'],
                       layer['stride'], layer['lax_dilation'],
                       layer['padding'][0][0])
      elif kind == 'conv':
        assert layer['kernel'] == [1, 1] and layer['stride'] == 1
        y = layer_input @ _node(variables['params'], name)['kernel'][0, 0]
      elif kind == 'batch_norm':
        p = _node(variables['params'], name)
        s = _node(variables['batch_stats'], name)
        y = ((layer_input - s['mean']) / np.sqrt(s['var'] + layer['epsilon'])
             * p['scale'] + p['bias'])
      elif kind == 'relu':
        y = np.maximum(layer_input, 0)
      elif kind == 'global_avg_pool':
        y = layer_input.mean(axis=(1, 2))
      elif kind == 'dense':
        p = _node(variables['params'], name)
        y = layer_input @ p['kernel'] + p['bias']
      else:
        raise AssertionError(f'unexpected layer kind {kind}')
      outputs[name] = y
    return y

  def views(x):
    if summary['test_time_flip']:
      return (forward(x) + forward(x[:, :, ::-1])) / 2
    return forward(x)

  s = summary['test_time_shift']
  if not s:
    return views(x)
  h, w = x.shape[1:3]
  padded = np.pad(x, ((0, 0), (s, s), (s, s), (0, 0)), mode='reflect')
  return views(x) / 2 + (views(padded[:, :h, :w]) + views(
      padded[:, 2 * s:2 * s + h, 2 * s:2 * s + w])) / 4


@pytest.mark.slow
def test_a_numpy_rebuild_from_the_inspection_json_matches_the_logits(
    tiny_config, tmp_path, mock_cifar, capsys):
  tiny_config.ema_decay = 0.9
  tiny_config.test_time_flip = True
  workdir = str(tmp_path / 'run')
  loop.train_and_evaluate(tiny_config, workdir)
  capsys.readouterr()
  modes.inspect_model(tiny_config, workdir, as_json=True)
  summary = json.loads(capsys.readouterr().out)
  assert summary['weights'] == 'ema' and summary['test_time_flip']
  assert summary['input']['layout'] == 'NHWC'
  kinds = [l['kind'] for l in summary['layers']]
  assert kinds[-2:] == ['global_avg_pool', 'dense'] and 'relu' in kinds
  assert all(l['epsilon'] > 0 for l in summary['layers']
             if l['kind'] == 'batch_norm')

  state, step = evaluation.restore_state(tiny_config, workdir)[:2]
  variables = jax.tree_util.tree_map(
      lambda a: np.asarray(a, np.float64),
      {'params': state.params, 'batch_stats': state.batch_stats})
  test = source.load_split(tiny_config, 'test')
  got = rebuild(summary, variables, test.images)

  normalized = augment.normalize(test.images, summary['input']['normalization']['mean'],
                              summary['input']['normalization']['std'])
  predict = jax.jit(lambda x: state.apply_fn(
      {'params': state.params, 'batch_stats': state.batch_stats}, x,
      train=False))
  want = np.asarray((predict(normalized) + predict(normalized[:, :, ::-1])) / 2)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)
  # And the accuracy that --mode=eval wrote for the same checkpoint.
  written = json.load(open(os.path.join(workdir, 'eval_test.json')))
  assert written['step'] == step
  assert np.mean(np.argmax(got, -1) == test.labels) == pytest.approx(
      written['accuracy'])
