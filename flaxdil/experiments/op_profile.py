"""Where a train step's time goes, op by op (bin/profile_ops.py).

Traces a few train steps of a config with jax.profiler (random data of the
dataset's shape, the step bench.py times) and sums the time of each
compiled op (each XLA:CPU thunk, or each GPU kernel) over the steps. The
compiled program names each op's source in its metadata (op_name), so
every op is attributed to a network part and a pass: 'block3/depthwise',
'backward'. A fused op carries its root's op_name, so a fusion that also
holds its neighbours' elementwise work is charged to the root's part.
Loops ('while') are not counted themselves: the ops of their bodies are.
"""

from __future__ import annotations

import collections
import glob
import itertools
import os
import re
import tempfile
import time

import jax
import ml_collections

from flaxdil import timing
from flaxdil.config import rules
from flaxdil.errors import FlaxdilError
from flaxdil.experiments.benchmark import (TrainTiming, matmul_flops_per_sec,
                                          train_flops)
from flaxdil.inspection import summary
from flaxdil.training.devices import Devices
from flaxdil.training.steps import create_model

# An op of the compiled program: `%name = shape opcode(...)..., op_name="..."`.
_OP = re.compile(r'^\s*(?:ROOT )?%?([\w.\-]+) = .*?\b([a-z][\w\-]*)\(')
_OP_NAME = re.compile(r'op_name="([^"]*)"')
# Outside the network: what the step spends on random keys and augmentation,
# on the loss, and (the rest) on the optimizer and the metrics.
_KEYS = re.compile(r'threefry|random|bernoulli|randint|uniform|augment|'
                   r'example_keys|permutation')
_LOSS = re.compile(r'softmax|one_hot|cross_entropy|smooth')
_CONTROL = {'while', 'conditional', 'call'}


def op_sources(hlo_text: str) -> dict[str, tuple[str, str]]:
  """Each op of a compiled program's text → (its opcode, its op_name)."""
  sources = {}
  for line in hlo_text.splitlines():
    match = _OP.match(line)
    if match:
      op_name = _OP_NAME.search(line)
      sources[match.group(1)] = (match.group(2),
                                 op_name.group(1) if op_name else '')
  return sources


# Control flow that names its ops below the module running it
# (.../depthwise/while/body/closed_call/mul): the module is what precedes it.
_LOOPS = ('while', 'scan', 'cond')


def attribute(op_name: str) -> tuple[str, str, str]:
  """op_name → (pass, block, part): ('backward', 'block3', 'depthwise');
  ops outside the network are ('', 'outside the network', what they do)."""
  model = re.search(r'(transpose\()?jvp\((\w+)\)\)?/(.*)', op_name)
  if model is None:
    what = ('random keys, augmentation' if _KEYS.search(op_name) else
            'loss' if _LOSS.search(op_name) else 'optimizer, metrics, other')
    return '', 'outside the network', what
  path = [re.sub(r'^jit\((\w+)\)$', r'\1', s) for s in model.group(3).split('/')]
  # The last segment is the primitive; the module path is what precedes it
  # (less 'joint' and the private jitted helpers a module calls, '_resize'),
  # up to any loop or branch the module runs (_LOOPS).
  modules = [s for s in itertools.takewhile(lambda s: s not in _LOOPS, path[:-1])
             if s and s != 'joint' and not s.startswith('_')] or ['network']
  return ('backward' if model.group(1) else 'forward'), modules[0], modules[-1]


def op_times(xplane_path: str) -> dict[str, float]:
  """Each compiled op's name → its total seconds in the trace (host thunks
  on the CPU, kernels on a GPU: the events that carry an hlo_op)."""
  from jax.profiler import ProfileData
  seconds = collections.Counter()
  for plane in ProfileData.from_file(xplane_path).planes:
    for line in plane.lines:
      for event in line.events:
        stats = dict(event.stats)
        if 'hlo_op' in stats and not event.name.startswith('end: '):
          seconds[stats['hlo_op']] += event.duration_ns * 1e-9
  return dict(seconds)


def profile(config: ml_collections.ConfigDict, steps: int = 3) -> dict:
  """Traces `steps` train steps of config (after two untimed ones) and
  returns the seconds per step of each (pass, block, part), with the
  step's wall time, the ops' total, the ops it could not attribute, and
  each part's training FLOPs per step (benchmark.train_flops of its MACs
  × the batch) with the machine's matmul FLOP/s."""
  if steps < 1:
    raise FlaxdilError(f'--steps={steps}: trace at least 1 step.')
  devices = Devices.of()
  info = rules.check_run(config, devices.all)
  flops = collections.Counter()
  for layer in summary.summarize(create_model(config, info),
                                 info.image_shape)['layers']:
    flops[layer['name'].split('/')[-1]] += train_flops(
        layer['macs'] * config.batch_size)
  timed = TrainTiming(config, info, devices)
  hlo = timed.compiled_text()
  timed.run_steps(2)
  with tempfile.TemporaryDirectory() as directory:
    jax.profiler.start_trace(directory)
    start = time.perf_counter()
    timed.run_steps(steps)
    wall = time.perf_counter() - start
    jax.profiler.stop_trace()
    traces = glob.glob(os.path.join(directory, '**', '*.xplane.pb'),
                       recursive=True)
    times = op_times(max(traces, key=os.path.getmtime))
  sources = op_sources(hlo)
  parts, kinds, unknown = collections.Counter(), collections.Counter(), 0.0
  for name, seconds in times.items():
    opcode, op_name = sources.get(name, ('', ''))
    if opcode in _CONTROL:
      continue
    if not opcode:
      unknown += seconds
      continue
    key = attribute(op_name)
    direction, _, part = key
    parts[key] += seconds / steps
    # 'slice_add_fusion.12' → 'slice_add_fusion': what XLA made of the part.
    kinds[direction, part, re.sub(r'\.\d+$', '', name)] += seconds / steps
  return {'parts': dict(parts), 'kinds': dict(kinds),
          'step_seconds': wall / steps,
          'ops_seconds': sum(parts.values()), 'unattributed_seconds':
          unknown / steps, 'steps': steps, 'batch_size': config.batch_size,
          'flops': {part: n for part, n in flops.items() if n},
          'matmul_flops_per_sec': matmul_flops_per_sec()}


def table(result: dict) -> str:
  """The profile as three Markdown tables: by part and pass, by block, and
  the largest ops by kind."""
  parts, total = result['parts'], result['ops_seconds']
  ms = lambda seconds: f'{1e3 * seconds:.1f}'
  by_part = collections.defaultdict(collections.Counter)
  by_block = collections.Counter()
  for (direction, block, part), seconds in parts.items():
    inside = block != 'outside the network'
    by_part[part if inside else f'({part})'][direction or 'total'] += seconds
    by_block[block] += seconds
  peak = result['matmul_flops_per_sec']
  lines = ['| part | forward ms | backward ms | total ms | share | '
           'GFLOP/s (of the matmul peak) |', '|---|---|---|---|---|---|']
  for part, cells in sorted(by_part.items(),
                            key=lambda item: -sum(item[1].values())):
    seconds = sum(cells.values())
    rate = result['flops'].get(part, 0) / seconds
    lines.append(f'| {part} | {ms(cells["forward"])} | '
                 f'{ms(cells["backward"])} | {ms(seconds)} | '
                 f'{seconds / total:.1%} | '
                 f'{f"{rate / 1e9:.1f} ({rate / peak:.0%})" if rate else ""} |')
  lines += ['', '| block | ms | share |', '|---|---|---|']
  # Blocks in the network's order, then the head and what lies outside it.
  order = lambda block: (not block.startswith('block'),
                         int(re.sub(r'\D', '', block) or 0), block)
  for block, seconds in sorted(by_block.items(), key=lambda i: order(i[0])):
    lines.append(f'| {block} | {ms(seconds)} | {seconds / total:.1%} |')
  lines += ['', '| the largest ops, by kind | part | pass | ms | share |',
            '|---|---|---|---|---|']
  for (direction, part, kind), seconds in sorted(
      result['kinds'].items(), key=lambda item: -item[1])[:12]:
    lines.append(f'| {kind} | {part} | {direction} | {ms(seconds)} | '
                 f'{seconds / total:.1%} |')
  lines += ['', f'ops {ms(total)} ms per step of batch '
            f'{result["batch_size"]}, step wall time '
            f'{ms(result["step_seconds"])} ms (ops may overlap on several '
            f'threads; {ms(result["unattributed_seconds"])} ms not found in '
            f'the program), one trace of {result["steps"]} steps; matmul '
            f'peak {peak / 1e9:.0f} GFLOP/s; {timing.cpu_description()}']
  return '\n'.join(lines)
