"""What a model is, layer by layer: parameters, cost and receptive field.

The layers are read off the model itself (intercepting its module calls while
it is traced with abstract shapes), so the summary cannot drift from the code.
Costs follow the paper's Eq. (2)–(4), counted in multiply-adds (MACs). As
text tables: flaxdil.inspection.text.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flaxdil.models import depthwise as depthwise_ops
from flaxdil.models import dilation
from flaxdil.models.dilated import DilatedNet
from flaxdil.models.layers import (Concat, DilatedDepthwiseConv, Flatten,
                                   GlobalAvgPool, MaxPool, PointwiseConv, ReLU,
                                   Resize)


# What each operation is called in the summary; every one is a step of the
# computation, so that the layers alone say what the network computes.
_KINDS = ((DilatedDepthwiseConv, 'depthwise_conv'), (PointwiseConv, 'conv'),
          (nn.Conv, 'conv'), (nn.Dense, 'dense'), (nn.BatchNorm, 'batch_norm'),
          (ReLU, 'relu'), (GlobalAvgPool, 'global_avg_pool'),
          (MaxPool, 'max_pool'), (Concat, 'concat'), (Flatten, 'flatten'),
          (nn.Dropout, 'dropout'), (Resize, 'resize'))


@dataclasses.dataclass
class Layer:
  name: str
  # resize | depthwise_conv | conv | dense | batch_norm | relu |
  # global_avg_pool | max_pool | concat | flatten | dropout (the identity at
  # inference)
  kind: str
  in_channels: int
  out_channels: int
  input_hw: tuple[int, int] | None
  output_hw: tuple[int, int] | None
  params: int
  macs: int
  kernel: tuple[int, int] | None = None
  stride: int | None = None
  dilation: int | None = None        # the paper's δ
  lax_dilation: int | None = None    # rhs_dilation, the tap spacing
  padding: Any = None
  groups: int | None = None
  filter_span: int | None = None     # the paper's C = (S+1)δ + S
  # Of the 3×3 taps, how many ever read the feature map rather than padding
  # (e.g. 1 for δ = 2 on a 4×4 map: the filter is then a 1×1 convolution).
  active_taps: int | None = None
  # The extent of those taps: the span the filter really has on this map.
  effective_span: int | None = None
  # Of one output pixel, in pixels of the network's input (the images after
  # any resize), through the filter spans (the paper's view) and through the
  # effective spans (what the layer can see).
  # Only for a plain chain of layers (dilated_net); None for branching nets.
  receptive_field: int | None = None
  effective_receptive_field: int | None = None
  # The names of the layers whose outputs this one reads ('input': the
  # normalised image), in argument order.
  inputs: list[str] = dataclasses.field(default_factory=list)
  epsilon: float | None = None       # batch_norm: y = (x - mean) / sqrt(var + ε)
  momentum: float | None = None      # batch_norm: of the running averages


def _path(module: nn.Module) -> str:
  return '/'.join(module.path)


def _subtree_size(params, path: str) -> int:
  node = params
  for key in path.split('/'):
    if key not in node:  # A layer without parameters.
      return 0
    node = node[key]
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(node))


def trace_layers(model: nn.Module, image_shape) -> tuple[list[Layer], Any]:
  """Layers in call order and the abstract variables of `model`."""
  calls = []
  # Which layer produced each array: by identity, while tracing. The arrays
  # are kept alive so that no id is reused.
  producers, alive = {}, []

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    kind = next((k for cls, k in _KINDS if isinstance(context.module, cls)),
                None)
    if context.method_name == '__call__' and kind:
      inputs = [producers.get(id(a), '?') for a in args
                if hasattr(a, 'shape')]
      producers[id(out)] = _path(context.module)
      alive.extend([out, *args])
      calls.append((context.module, kind, args[0].shape, out.shape, inputs))
    return out

  def init():
    images = jnp.zeros((1,) + tuple(image_shape))
    producers[id(images)] = 'input'
    alive.append(images)
    with nn.intercept_methods(record):
      return model.init(jax.random.key(0), images, train=False)

  variables = jax.eval_shape(init)
  params = variables['params']
  layers = []
  # Input pixels between neighbouring outputs; receptive fields so far.
  jump, field, effective_field = 1, 1, 1
  chain = isinstance(model, DilatedNet)
  for module, kind, in_shape, out_shape, inputs in calls:
    name = _path(module)
    params_count = _subtree_size(params, name)
    cin, cout = in_shape[-1], out_shape[-1]
    spatial = len(in_shape) == 4
    hw_in = tuple(in_shape[1:3]) if spatial else None
    hw_out = tuple(out_shape[1:3]) if len(out_shape) == 4 else None
    pixels = int(np.prod(hw_out)) if hw_out else 1
    layer = Layer(name, kind, cin, cout, hw_in, hw_out, params_count, 0,
                  inputs=inputs)
    if isinstance(module, DilatedDepthwiseConv):
      k, rate = dilation.KERNEL_SIZE, dilation.lax_dilation(module.dilation)
      layer.kernel, layer.stride = (k, k), module.strides
      layer.dilation, layer.lax_dilation = module.dilation, rate
      pad = dilation.padding(rate)
      layer.padding, layer.groups = [[pad, pad], [pad, pad]], cin
      layer.macs = k * k * cin * pixels
      layer.filter_span = dilation.filter_span(module.dilation)
      _, _, taps = depthwise_ops.tap_windows(hw_in[0], hw_in[1],
                                             module.strides, rate)
      layer.active_taps = len(taps)
      rows = [a for a, _, _, _ in taps]
      layer.effective_span = dilation.span_of_taps(min(rows), max(rows), rate)
    elif isinstance(module, PointwiseConv):
      layer.kernel, layer.stride = (1, 1), 1
      layer.lax_dilation, layer.padding, layer.groups = 1, 'VALID', 1
      layer.macs = cin * cout * pixels
      layer.filter_span = layer.effective_span = 1
    elif isinstance(module, nn.Conv):
      kh, kw = module.kernel_size
      stride = (module.strides if isinstance(module.strides, int)
                else (module.strides or (1,))[0])
      layer.kernel, layer.stride = (kh, kw), stride
      layer.lax_dilation, layer.groups = 1, module.feature_group_count
      layer.padding = module.padding if isinstance(module.padding, str) else None
      layer.macs = kh * kw * cin * cout * pixels // module.feature_group_count
      layer.filter_span = layer.effective_span = kh
    elif isinstance(module, nn.Dense):
      layer.macs = cin * cout
    elif isinstance(module, nn.BatchNorm):
      layer.epsilon, layer.momentum = module.epsilon, module.momentum
    elif isinstance(module, MaxPool):
      layer.kernel, layer.stride = (module.window,) * 2, module.strides
      layer.padding = module.padding
    if chain and layer.filter_span is not None:
      field, next_jump = dilation.grow_receptive_field(
          field, jump, layer.filter_span, layer.stride)
      effective_field, _ = dilation.grow_receptive_field(
          effective_field, jump, layer.effective_span, layer.stride)
      jump = next_jump
      layer.receptive_field = field
      layer.effective_receptive_field = effective_field
    layers.append(layer)
  return layers, variables


def joint_module_costs(layers: list[Layer]) -> list[dict]:
  """Eq. (2)–(4) for each depthwise conv followed by a 1×1 conv.

  standard  = Lk²·H·N·Li²          (one dense Lk×Lk convolution)
  separable = Lk²·H·Li² + H·N·Li²  (depthwise + pointwise)
  ratio     = separable / standard = 1/N + 1/Lk²
  """
  costs = []
  for dw, pw in zip(layers, layers[1:]):
    if dw.kind != 'depthwise_conv' or pw.kind != 'conv' or pw.kernel != (1, 1):
      continue
    lk, h, n = dw.kernel[0], dw.in_channels, pw.out_channels
    li2 = int(np.prod(dw.output_hw))
    standard = lk * lk * h * n * li2
    separable = lk * lk * h * li2 + h * n * li2
    costs.append({
        'module': dw.name.rsplit('/', 1)[0], 'Lk': lk, 'H': h, 'N': n,
        'Li': list(dw.output_hw), 'standard_macs': standard,
        'separable_macs': separable, 'ratio': separable / standard,
        'ratio_eq4': 1 / n + 1 / lk ** 2,
    })
  return costs


def inference_spec(config, info) -> dict:
  """What turns raw images into the logits --mode=eval computes, besides
  the layers: with them, enough to rebuild the network without flaxdil."""
  return {
      'input': {'dtype': 'uint8', 'layout': 'NHWC',
                'shape': list(info.image_shape),
                'normalization': {'mean': list(info.mean),
                                  'std': list(info.std),
                                  'formula': '(pixel - mean) / std'}},
      # Which variables evaluation uses: the EMA of the weights and
      # BatchNorm statistics, or the raw ones.
      'weights': 'ema' if config.ema_decay else 'params',
      # Logits averaged over the image and its left-right mirror.
      'test_time_flip': bool(config.test_time_flip),
      # Also the image translated by this many pixels (steps.predict).
      'test_time_shift': int(config.test_time_shift),
      'dtype': config.dtype,
  }


def param_rows(params) -> list[dict]:
  """One row per parameter array: path, shape, count (and stats if concrete)."""
  rows = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    row = {'path': '/'.join(p.key for p in path), 'shape': list(leaf.shape),
           'count': int(np.prod(leaf.shape))}
    if isinstance(leaf, (np.ndarray, jax.Array)):
      values = np.asarray(leaf, np.float64)
      row['mean'], row['std'] = float(values.mean()), float(values.std())
    rows.append(row)
  return rows


def summarize(model: nn.Module, image_shape, params=None,
              metadata: dict | None = None) -> dict:
  """The whole description as one JSON-able dict.

  params: concrete parameters (e.g. a restored checkpoint) to describe with
  their statistics; by default only their shapes. metadata: extra top-level
  entries (model name, checkpoint, ...).
  """
  layers, variables = trace_layers(model, image_shape)
  params = variables['params'] if params is None else params
  rows = param_rows(params)
  per_module = {}
  for row in rows:
    top = row['path'].split('/')[0]
    per_module[top] = per_module.get(top, 0) + row['count']
  macs = sum(layer.macs for layer in layers)
  return {
      **(metadata or {}),
      'input_shape': list(image_shape),
      # What the first layer after any resize sees.
      'network_input_shape': next(
          ([*layer.output_hw, layer.out_channels] for layer in layers
           if layer.kind == 'resize'), list(image_shape)),
      'layers': [dataclasses.asdict(layer) for layer in layers],
      'joint_module_costs': joint_module_costs(layers),
      'params': rows,
      'params_per_module': per_module,
      'total_params': sum(row['count'] for row in rows),
      'total_macs': macs,
  }
