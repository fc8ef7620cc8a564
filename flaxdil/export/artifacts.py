"""A trained checkpoint → deployable artifacts, verified and measured.

WORKDIR/export/ holds
  model.onnx        float32 ONNX, emitted from the inspection's description
                    of the computation (flaxdil.model_summary) with the
                    `onnx` package: no converter, no TensorFlow
  model_int8.onnx   static int8 (ONNX Runtime, QDQ, per-channel weights),
                    calibrated on training images, never test images
  model.jaxexport   serialized `jax.export`, symbolic batch size
  report.json       per artifact: size, agreement with the checkpoint on
                    the whole test split, accuracy, latency, throughput

Every artifact maps uint8 images [batch, H, W, C] to the logits that
--mode=eval computes: the weights evaluation uses (the EMA where kept),
normalisation inside, and the test-time flip inside where the config uses
it. The exporters need `pip install -r requirements-export.txt`; training
needs none of it.
"""

from __future__ import annotations

import functools
import os
import shutil
import tempfile

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from flaxdil import (benchmark, checkpoints, data, evaluation, model_summary,
                     steps)
from flaxdil.errors import FlaxdilError

_CALIBRATION_IMAGES = 300


def _require_exporters():
  try:
    import onnx  # noqa: F401
    import onnxruntime  # noqa: F401
  except ImportError as e:
    raise FlaxdilError(
        f'--mode=export needs the export packages ({e.name} is missing). '
        'Fix: pip install -r requirements-export.txt') from None


def logits_fn(state, info, test_time_flip: bool):
  """uint8 images → the logits --mode=eval computes (steps.predict)."""
  return functools.partial(steps.predict, state, info=info,
                           test_time_flip=test_time_flip)


# --- ONNX -------------------------------------------------------------------


def _node_params(tree, name):
  for key in name.split('/'):
    tree = tree[key]
  return tree


def build_onnx(summary: dict, variables: dict):
  """The ONNX model of the summary's computation (inference_spec + layers)
  with the given variables ({'params', 'batch_stats'}, NumPy arrays)."""
  import onnx
  from onnx import TensorProto, helper, numpy_helper

  nodes, weights = [], []

  def const(name, array):
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.floating):
      array = array.astype(np.float32)
    weights.append(numpy_helper.from_array(array, name))
    return name

  def node(op, inputs, name, **attrs):
    nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
    return name

  spec = summary['input']
  h, w, c = spec['shape']
  norm = spec['normalization']
  x = node('Cast', ['images'], 'as_float', to=TensorProto.FLOAT)
  x = node('Sub', [x, const('mean', np.float32(norm['mean']))], 'centred')
  x = node('Div', [x, const('std', np.float32(norm['std']))], 'normalized')
  x = node('Transpose', [x], 'nchw', perm=[0, 3, 1, 2])
  if summary['test_time_flip']:
    flipped = node('Slice', [x, const('flip_start', np.int64([-1])),
                             const('flip_end', np.int64([-(2 ** 62)])),
                             const('flip_axis', np.int64([3])),
                             const('flip_step', np.int64([-1]))], 'mirrored')
    x = node('Concat', [x, flipped], 'with_mirrors', axis=0)
  outputs = {'input': x}
  params, stats = variables['params'], variables['batch_stats']
  for layer in summary['layers']:
    kind, name = layer['kind'], layer['name']
    inputs = [outputs[i] for i in layer['inputs']]
    if kind == 'depthwise_conv':
      kernel = _node_params(params, name)['kernel']  # (3, 3, 1, C)
      pad = layer['padding'][0][0]
      y = node('Conv', [inputs[0], const(name + '/W', kernel.transpose(3, 2, 0, 1))],
               name, group=layer['groups'], strides=[layer['stride']] * 2,
               dilations=[layer['lax_dilation']] * 2, pads=[pad] * 4)
    elif kind == 'conv':
      p = _node_params(params, name)
      extra = [const(name + '/B', p['bias'])] if 'bias' in p else []
      padding = ({'pads': [0] * 4} if layer['padding'] == 'VALID'
                 else {'auto_pad': 'SAME_UPPER'})
      y = node('Conv', [inputs[0], const(name + '/W', p['kernel'].transpose(3, 2, 0, 1))]
               + extra, name, strides=[layer['stride']] * 2,
               group=layer['groups'], **padding)
    elif kind == 'batch_norm':
      p, s = _node_params(params, name), _node_params(stats, name)
      y = node('BatchNormalization',
               [inputs[0], const(name + '/scale', p['scale']),
                const(name + '/bias', p['bias']), const(name + '/mean', s['mean']),
                const(name + '/var', s['var'])], name,
               epsilon=layer['epsilon'])
    elif kind == 'relu':
      y = node('Relu', inputs, name)
    elif kind == 'global_avg_pool':
      y = node('Flatten', [node('GlobalAveragePool', inputs, name + '/pool')],
               name)
    elif kind == 'max_pool':
      y = node('MaxPool', inputs, name, kernel_shape=layer['kernel'],
               strides=[layer['stride']] * 2,
               **({'auto_pad': 'SAME_UPPER'} if layer['padding'] == 'SAME'
                  else {}))
    elif kind == 'concat':
      y = node('Concat', inputs, name, axis=1)
    elif kind == 'flatten':  # flaxdil flattens NHWC.
      y = node('Flatten', [node('Transpose', inputs, name + '/nhwc',
                                perm=[0, 2, 3, 1])], name)
    elif kind == 'dropout':  # The identity at inference.
      y = node('Identity', inputs, name)
    elif kind == 'dense':
      p = _node_params(params, name)
      y = node('Gemm', [inputs[0], const(name + '/W', p['kernel']),
                        const(name + '/B', p['bias'])], name)
    else:
      raise FlaxdilError(f'cannot export layer {name} of kind {kind!r}.')
    outputs[name] = y
  if summary['test_time_flip']:
    y = node('Reshape', [y, const('pairs', np.int64([2, -1, layer['out_channels']]))],
             'paired')
    y = node('ReduceMean', [y, const('pair_axis', np.int64([0]))], 'averaged',
             keepdims=0)
  nodes.append(helper.make_node('Identity', [y], ['logits'], name='logits'))
  graph = helper.make_graph(
      nodes, 'flaxdil',
      [helper.make_tensor_value_info('images', TensorProto.UINT8,
                                     ['batch', h, w, c])],
      [helper.make_tensor_value_info('logits', TensorProto.FLOAT,
                                     ['batch', layer['out_channels']])],
      initializer=weights)
  model = helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)],
                            producer_name='flaxdil')
  model.ir_version = 9
  onnx.checker.check_model(model)
  return model


class _Calibration:
  """ONNX Runtime's CalibrationDataReader over training images."""

  def __init__(self, images: np.ndarray, batch: int = 50):
    self._batches = iter([{'images': images[i:i + batch]}
                          for i in range(0, len(images), batch)])

  def get_next(self):
    return next(self._batches, None)


def quantize_int8(float_path: str, int8_path: str, images: np.ndarray,
                  work: str) -> None:
  from onnxruntime import quantization
  from onnxruntime.quantization.shape_inference import quant_pre_process
  # Pre-processing folds BatchNorm into the convolutions and fuses what it
  # can: without it the int8 model was no faster than the float one.
  prepared = os.path.join(work, 'prepared.onnx')
  quant_pre_process(float_path, prepared)
  quantization.quantize_static(
      prepared, int8_path, _Calibration(images),
      quant_format=quantization.QuantFormat.QDQ, per_channel=True,
      activation_type=quantization.QuantType.QUInt8,
      weight_type=quantization.QuantType.QInt8)
  os.remove(prepared)


def _ort_session(path: str, threads: int):
  import onnxruntime
  options = onnxruntime.SessionOptions()
  options.intra_op_num_threads = threads
  options.inter_op_num_threads = 1
  return onnxruntime.InferenceSession(path, options,
                                      providers=['CPUExecutionProvider'])


# --- Measurement ------------------------------------------------------------


def _median_ms(fn, calls: int) -> float:
  fn()  # The first call may compile or allocate.
  return 1e3 * benchmark.median_seconds(fn, calls)


def _logits(predict, images, batch: int = 500) -> np.ndarray:
  return np.concatenate([np.asarray(predict(images[i:i + batch]))
                         for i in range(0, len(images), batch)])


def _verify(logits, labels, reference) -> dict:
  return {
      'accuracy': float(np.mean(np.argmax(logits, -1) == labels)),
      'agreement_with_checkpoint': float(
          np.mean(np.argmax(logits, -1) == np.argmax(reference, -1))),
      'max_abs_logit_difference': float(np.max(np.abs(logits - reference))),
  }


def export(config: ml_collections.ConfigDict, workdir: str,
           step: int | None = None, latency_calls: int = 200) -> dict:
  """Writes WORKDIR/export/ (replacing an older one only once the new one
  is complete) and returns its report."""
  _require_exporters()
  from jax import export as jax_export
  import onnx
  state, step, pmapped = evaluation.restore_state(config, workdir, step)
  info = pmapped.info
  summary = model_summary.summarize(pmapped.model, info.image_shape)
  summary.update(model_summary.inference_spec(config, info))
  variables = jax.tree_util.tree_map(
      np.asarray, {'params': state.params, 'batch_stats': state.batch_stats})
  test = data.load_split(config, config.test_split)
  calibration = data.load_split(config, config.train_split).images[
      :_CALIBRATION_IMAGES]
  jitted = jax.jit(logits_fn(state, info, config.test_time_flip))
  reference = _logits(jitted, test.images)  # What --mode=eval computes.

  final = os.path.join(workdir, 'export')
  try:
    work = tempfile.mkdtemp(prefix='.export-tmp-', dir=workdir)
  except OSError as e:
    raise FlaxdilError(f'cannot write to {workdir!r} ({e.strerror}). Fix: '
                       'export from a workdir you can write to.') from None
  try:
    paths = {name: os.path.join(work, name) for name in
             ('model.onnx', 'model_int8.onnx', 'model.jaxexport')}
    onnx.save(build_onnx(summary, variables), paths['model.onnx'])
    quantize_int8(paths['model.onnx'], paths['model_int8.onnx'], calibration,
                  work)
    symbolic = jax.ShapeDtypeStruct(
        jax_export.symbolic_shape(f'b,{",".join(map(str, info.image_shape))}'),
        jnp.uint8)
    with open(paths['model.jaxexport'], 'wb') as f:
      f.write(jax_export.export(jitted)(symbolic).serialize())
    with open(paths['model.jaxexport'], 'rb') as f:
      exported = jax_export.deserialize(bytearray(f.read()))

    one, batch64 = test.images[:1], test.images[:64]
    runners = {'jax_jit': lambda x: np.asarray(jitted(x)),
               'jax_export': lambda x: np.asarray(exported.call(x))}
    sessions = {}
    for name in ('model.onnx', 'model_int8.onnx'):
      for threads in (1, 2):
        sessions[name, threads] = _ort_session(paths[name], threads)
    runners['onnx_float'] = lambda x: sessions['model.onnx', 2].run(
        None, {'images': x})[0]
    runners['onnx_int8'] = lambda x: sessions['model_int8.onnx', 2].run(
        None, {'images': x})[0]
    files = {'jax_jit': None, 'jax_export': 'model.jaxexport',
             'onnx_float': 'model.onnx', 'onnx_int8': 'model_int8.onnx'}
    artifacts = {}
    for name, run in runners.items():
      logits = reference if name == 'jax_jit' else _logits(run, test.images)
      entry = _verify(logits, test.labels, reference)
      if files[name]:
        entry['file'] = files[name]
        entry['size_bytes'] = os.path.getsize(paths[files[name]])
      if name.startswith('onnx'):
        for threads in (1, 2):
          entry[f'latency_ms_batch1_{threads}_threads'] = _median_ms(
              lambda: sessions[files[name], threads].run(None, {'images': one}),
              latency_calls)
      else:  # XLA:CPU's threads are fixed when JAX starts: all cores here.
        entry['latency_ms_batch1_all_threads'] = _median_ms(
            lambda: run(one), latency_calls)
      entry['images_per_sec_batch64'] = 64 / (1e-3 * _median_ms(
          lambda: run(batch64), max(latency_calls // 10, 5)))
      artifacts[name] = entry
    report = {
        'checkpoint': {'workdir': os.path.abspath(workdir), 'step': int(step),
                       'weights': summary['weights']},
        'test_split': config.test_split, 'num_examples': len(test),
        'test_time_flip': summary['test_time_flip'],
        'calibration': f'first {len(calibration)} images of '
                       f'{config.train_split}',
        'checkpoint_accuracy': float(np.mean(
            np.argmax(reference, -1) == test.labels)),
        'artifacts': artifacts,
        'cpu': benchmark.cpu_description(), 'latency_calls': latency_calls,
    }
    checkpoints.write_json_atomic(os.path.join(work, 'report.json'), report)
    os.chmod(work, 0o755)  # mkdtemp's 0700 is for while it is incomplete.
    if os.path.exists(final):
      shutil.rmtree(final)
    os.replace(work, final)
  except BaseException:
    shutil.rmtree(work, ignore_errors=True)
    raise
  return report
