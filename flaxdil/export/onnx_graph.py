"""ONNX from the inspection's description of the computation: the float
graph emitted with the `onnx` package (no converter, no TensorFlow), its
static int8 form (ONNX Runtime, QDQ, per-channel weights) and sessions to
run them. Needs `pip install -r requirements-export.txt`.
"""

from __future__ import annotations

import os

import numpy as np

from flaxdil.errors import FlaxdilError


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
  # Test-time augmentation (steps.predict): every view in one batch, then
  # the views' logits averaged with steps.predict's weights.
  views, view_weights = [x], [1.0]
  shift = summary.get('test_time_shift', 0)
  if shift:
    padded = node('Pad', [x, const('shift_pads', np.int64(
        [0, 0, shift, shift, 0, 0, shift, shift]))], 'reflected',
                  mode='reflect')
    crops = []
    for tag, start in (('up_left', 0), ('down_right', 2 * shift)):
      crops.append(node('Slice', [
          padded, const(tag + '_start', np.int64([start, start])),
          const(tag + '_end', np.int64([start + h, start + w])),
          const(tag + '_axes', np.int64([2, 3]))], tag))
    views, view_weights = [x, *crops], [0.5, 0.25, 0.25]
  if summary['test_time_flip']:
    mirrored = []
    for i, view in enumerate(views):
      mirrored += [view, node('Slice', [
          view, const(f'flip_start{i}', np.int64([-1])),
          const(f'flip_end{i}', np.int64([-(2 ** 62)])),
          const(f'flip_axis{i}', np.int64([3])),
          const(f'flip_step{i}', np.int64([-1]))], f'mirrored{i}')]
    views, view_weights = mirrored, [w / 2 for w in view_weights
                                      for _ in range(2)]
  if len(views) > 1:
    x = node('Concat', views, 'with_views', axis=0)
  outputs = {'input': x}
  params, stats = variables['params'], variables['batch_stats']
  for layer in summary['layers']:
    kind, name = layer['kind'], layer['name']
    inputs = [outputs[i] for i in layer['inputs']]
    if kind == 'resize':  # jax.image.resize's bilinear: half-pixel centres.
      y = node('Resize', [inputs[0], '', '',
                          const(name + '/size', np.int64(layer['output_hw']))],
               name, mode='linear', axes=[2, 3], antialias=0,
               coordinate_transformation_mode='half_pixel')
    elif kind == 'depthwise_conv':
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
  if len(views) > 1:
    y = node('Reshape', [y, const('view_shape', np.int64(
        [len(views), -1, layer['out_channels']]))], 'by_view')
    y = node('Mul', [y, const('view_weights', np.float32(view_weights).reshape(
        -1, 1, 1))], 'weighted')
    y = node('ReduceSum', [y, const('view_axis', np.int64([0]))], 'averaged',
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


def ort_session(path: str, threads: int):
  import onnxruntime
  options = onnxruntime.SessionOptions()
  options.intra_op_num_threads = threads
  options.inter_op_num_threads = 1
  return onnxruntime.InferenceSession(path, options,
                                      providers=['CPUExecutionProvider'])


