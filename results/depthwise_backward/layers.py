"""The depthwise backward pass of each of the paper's nine blocks, before
and after the chunked kernel gradient, timed in one process.

  python results/depthwise_backward/layers.py SIZE RATE OLD_COMMIT NEW_COMMIT

'old' and 'new' are flaxdil/models/depthwise.py as of the two commits
(read with `git show`; it imports only jax and flaxdil.models.dilation).
Each row: the median of 5 jitted calls of the hand-written backward
(input and kernel gradients) on random data of the block's shape at batch
128, and the kernel gradients' largest difference relative to the largest
entry.
"""

import importlib.util
import subprocess
import sys
import tempfile

import jax
import numpy as np

from flaxdil import timing



def module_at(commit: str):
  source = subprocess.run(
      ['git', 'show', f'{commit}:flaxdil/models/depthwise.py'],
      capture_output=True, text=True, check=True).stdout
  with tempfile.NamedTemporaryFile('w', suffix='.py', delete=False) as f:
    f.write(source)
  spec = importlib.util.spec_from_file_location(f'depthwise_{commit}', f.name)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


size, rate = int(sys.argv[1]), int(sys.argv[2])
old, new = module_at(sys.argv[3]), module_at(sys.argv[4])


def median_ms(fn, *args, calls=5):
  jax.block_until_ready(fn(*args))
  return 1e3 * timing.median_seconds(
      lambda: jax.block_until_ready(fn(*args)), calls)


# The depthwise convolutions' inputs in configs/cifar10.py's network.
CHANNELS = (3, 32, 64, 128, 256, 512, 512, 1024, 1024)
STRIDES = (1, 2, 1, 2, 1, 2, 1, 1, 1)
totals = {'old': 0.0, 'new': 0.0}
print(f'| block | input | old ms | new ms | ratio | kernel grad. difference |')
print('|---|---|---|---|---|---|')
for block, (channels, stride) in enumerate(zip(CHANNELS, STRIDES), 1):
  keys = jax.random.split(jax.random.key(block), 3)
  x = jax.random.normal(keys[0], (128, size, size, channels))
  kernel = jax.random.normal(keys[1], (3, 3, 1, channels))
  grad_y = jax.random.normal(
      keys[2], new.depthwise_sliced(x, kernel, stride, rate).shape)
  row = {}
  for name, module in (('old', old), ('new', new)):
    backward = jax.jit(lambda x, k, g, m=module: m._sliced_bwd(
        stride, rate, (x, k), g))
    row[name] = (median_ms(backward, x, kernel, grad_y),
                 backward(x, kernel, grad_y))
    totals[name] += row[name][0]
  want, got = row['old'][1][1], row['new'][1][1]
  difference = float(np.max(np.abs(got - want)) / np.max(np.abs(want)))
  print(f'| {block} | {size}×{size}×{channels}, stride {stride} | '
        f'{row["old"][0]:.1f} | {row["new"][0]:.1f} | '
        f'{row["old"][0] / row["new"][0]:.2f}× | {difference:.1e} |', flush=True)
  size = -(-size // stride)
print(f'| all | | {totals["old"]:.1f} | {totals["new"]:.1f} | '
      f'{totals["old"] / totals["new"]:.2f}× | |')
