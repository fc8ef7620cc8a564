"""A model summary (flaxdil.inspection.summary.summarize) as text for a terminal."""

from __future__ import annotations

import json


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
  out.append(f'input: {summary["input_shape"]}')
  if summary['network_input_shape'] != summary['input_shape']:
    out.append(f'network input: {summary["network_input_shape"]} (resized '
               'on the device; map sizes, taps and receptive fields below '
               'are in its pixels)')
  out.append('')
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
    if ref.get('published_macs'):
      out.append(f'The MobileNets paper\'s Table 8 gives '
                 f'{ref["published_macs"] / 1e6:,.0f} M multiply-adds.')
  if summary.get('paper_params'):
    out.append(f'The paper\'s Table 1 gives {summary["paper_params"] / 1e6:g} M '
               'parameters.')
  return '\n'.join(out)


def to_json(summary: dict) -> str:
  return json.dumps(summary, indent=2)
