"""What a model is, layer by layer: parameters, cost and receptive field.

The layers are read off the model itself (intercepting its module calls while
it is traced with abstract shapes), so the summary cannot drift from the code.
Costs follow the paper's Eq. (2)–(4), counted in multiply-adds (MACs).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from flaxdil.models.dilated import (DilatedDepthwiseConv, DilatedNet,
                                    PointwiseConv)
from flaxdil.ops import depthwise as depthwise_ops


@dataclasses.dataclass
class Layer:
  name: str
  kind: str                 # depthwise_conv | conv | dense | batch_norm
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
  # Of one output pixel, in input pixels, through the filter spans (the
  # paper's view) and through the effective spans (what the layer can see).
  # Only for a plain chain of layers (dilated_net); None for branching nets.
  receptive_field: int | None = None
  effective_receptive_field: int | None = None


def _path(module: nn.Module) -> str:
  return '/'.join(module.path)


def _subtree_size(params, path: str) -> int:
  node = params
  for key in path.split('/'):
    node = node[key]
  return sum(int(np.prod(x.shape)) for x in jax.tree_util.tree_leaves(node))


def trace_layers(model: nn.Module, image_shape) -> tuple[list[Layer], Any]:
  """Layers in call order and the abstract variables of `model`."""
  calls = []

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == '__call__' and isinstance(
        context.module, (DilatedDepthwiseConv, PointwiseConv, nn.Conv,
                         nn.Dense, nn.BatchNorm)):
      calls.append((context.module, args[0].shape, out.shape))
    return out

  def init():
    with nn.intercept_methods(record):
      return model.init(jax.random.key(0), jnp.zeros((1,) + tuple(image_shape)),
                        train=False)

  variables = jax.eval_shape(init)
  params = variables['params']
  layers = []
  # Input pixels between neighbouring outputs; receptive fields so far.
  jump, field, effective_field = 1, 1, 1
  chain = isinstance(model, DilatedNet)
  for module, in_shape, out_shape in calls:
    name = _path(module)
    params_count = _subtree_size(params, name)
    cin, cout = in_shape[-1], out_shape[-1]
    spatial = len(in_shape) == 4
    hw_in = tuple(in_shape[1:3]) if spatial else None
    hw_out = tuple(out_shape[1:3]) if spatial else None
    pixels = int(np.prod(hw_out)) if spatial else 1
    layer = Layer(name, '', cin, cout, hw_in, hw_out, params_count, 0)
    if isinstance(module, DilatedDepthwiseConv):
      k = 3
      layer.kind, layer.kernel, layer.stride = 'depthwise_conv', (k, k), module.strides
      layer.dilation, layer.lax_dilation = module.dilation, module.lax_dilation
      layer.padding, layer.groups = [list(p) for p in module.padding], cin
      layer.macs = k * k * cin * pixels
      layer.filter_span = (k - 1) * module.lax_dilation + 1
      taps = depthwise_ops.tap_windows(
          hw_in[0], hw_in[1], module.strides, module.lax_dilation)[2]
      layer.active_taps = len(taps)
      rows = [a for a, _, _, _ in taps]
      layer.effective_span = (max(rows) - min(rows)) * module.lax_dilation + 1
    elif isinstance(module, PointwiseConv):
      layer.kind, layer.kernel, layer.stride = 'conv', (1, 1), 1
      layer.lax_dilation, layer.padding, layer.groups = 1, 'VALID', 1
      layer.macs = cin * cout * pixels
      layer.filter_span = layer.effective_span = 1
    elif isinstance(module, nn.Conv):
      kh, kw = module.kernel_size
      stride = (module.strides if isinstance(module.strides, int)
                else (module.strides or (1,))[0])
      layer.kind, layer.kernel, layer.stride = 'conv', (kh, kw), stride
      layer.lax_dilation, layer.groups = 1, module.feature_group_count
      layer.padding = module.padding if isinstance(module.padding, str) else None
      layer.macs = kh * kw * cin * cout * pixels // module.feature_group_count
      layer.filter_span = layer.effective_span = kh
    elif isinstance(module, nn.Dense):
      layer.kind, layer.macs = 'dense', cin * cout
    else:
      layer.kind = 'batch_norm'
    if chain and layer.filter_span is not None:
      field += (layer.filter_span - 1) * jump
      effective_field += (layer.effective_span - 1) * jump
      jump *= layer.stride
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
      'layers': [dataclasses.asdict(layer) for layer in layers],
      'joint_module_costs': joint_module_costs(layers),
      'params': rows,
      'params_per_module': per_module,
      'total_params': sum(row['count'] for row in rows),
      'total_macs': macs,
  }


def _table(headers, rows) -> str:
  cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
  widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
  lines = ['  '.join(c.rjust(w) if i else c.ljust(w)
                     for i, (c, w) in enumerate(zip(row, widths)))
           for row in cells]
  lines.insert(1, '  '.join('-' * w for w in widths))
  return '\n'.join(lines)


def format_summary(summary: dict) -> str:
  """The same content as the JSON, as tables for a terminal."""
  out = []
  for key in ('model', 'dataset', 'checkpoint', 'checkpoint_step'):
    if key in summary:
      out.append(f'{key}: {summary[key]}')
  out.append(f'input: {summary["input_shape"]}\n')
  has_stats = any('mean' in r for r in summary['params'])
  headers = ['parameter', 'shape', 'count'] + (['mean', 'std'] if has_stats else [])
  rows = [[r['path'], 'x'.join(map(str, r['shape'])), f'{r["count"]:,}']
          + ([f'{r["mean"]:+.4f}', f'{r["std"]:.4f}'] if has_stats else [])
          for r in summary['params']]
  out += ['Parameters', _table(headers, rows), '']
  total = summary['total_params']
  out += ['Parameters per module', _table(
      ['module', 'count', 'share'],
      [[m, f'{c:,}', f'{100 * c / total:.1f}%'] for m, c in
       summary['params_per_module'].items()] + [['total', f'{total:,}', '100.0%']]), '']
  rows = []
  for layer in summary['layers']:
    dil = '' if layer['dilation'] is None else f'{layer["dilation"]}/{layer["lax_dilation"]}'
    hw = '' if layer['output_hw'] is None else 'x'.join(map(str, layer['output_hw']))
    rows.append([layer['name'], layer['kind'],
                 f'{layer["in_channels"]}->{layer["out_channels"]}', hw,
                 layer['stride'] or '', dil, layer['filter_span'] or '',
                 '' if layer['active_taps'] is None else f'{layer["active_taps"]}/9',
                 layer['effective_span'] if layer['kind'] == 'depthwise_conv' else '',
                 layer['receptive_field'] or '',
                 layer['effective_receptive_field'] or '', f'{layer["params"]:,}',
                 f'{layer["macs"]:,}'])
  out += ['Layers (δ/lax: the paper\'s dilation and lax rhs_dilation; span: '
          'the filter\'s extent C; taps: filter taps that ever read the map, '
          'not padding; eff: the extent of those taps on this map; RF / eff RF: '
          'receptive field on the input image through the spans / through the '
          'effective spans)',
          _table(['layer', 'kind', 'channels', 'out', 'stride', 'δ/lax', 'span',
                  'taps', 'eff', 'RF', 'eff RF', 'params', 'MACs'], rows), '']
  costs = summary['joint_module_costs']
  if costs:
    rows = [[c['module'], c['H'], c['N'], 'x'.join(map(str, c['Li'])),
             f'{c["standard_macs"]:,}', f'{c["separable_macs"]:,}',
             f'{c["ratio"]:.4f}', f'{c["ratio_eq4"]:.4f}'] for c in costs]
    std = sum(c['standard_macs'] for c in costs)
    sep = sum(c['separable_macs'] for c in costs)
    rows.append(['total', '', '', '', f'{std:,}', f'{sep:,}', f'{sep / std:.4f}', ''])
    out += ['Joint modules, Eq. (2)-(4): standard Lk²·H·N·Li² vs separable '
            'Lk²·H·Li² + H·N·Li²',
            _table(['module', 'H', 'N', 'Li', 'standard MACs', 'separable MACs',
                    'ratio', '1/N+1/Lk²'], rows), '']
  out.append(f'Total: {total:,} parameters, {summary["total_macs"]:,} '
             'multiply-adds per image.')
  if summary.get('imagenet_reference'):
    ref = summary['imagenet_reference']
    out.append(f'As published (224x224 input, 1000-class head): '
               f'{ref["total_params"]:,} parameters, {ref["total_macs"]:,} '
               'multiply-adds per image.')
  if summary.get('paper_params'):
    out.append(f'The paper\'s Table 1 gives {summary["paper_params"] / 1e6:g} M '
               'parameters.')
  return '\n'.join(out)


def to_json(summary: dict) -> str:
  return json.dumps(summary, indent=2)
