"""The depthwise kernel gradient alone: the fast path's sum (tap by tap,
each halved over all N·H·W rows) against the one-pass sum that
`fast_fused.diff` tried (each tap's products added 8 rows at a time, the
nine taps stacked into one pass, then halved).

  python results/depthwise_backward/kernel_grad_one_pass.py SIZE CHANNELS RATE

Batch 128, stride 1; x is a BatchNorm-and-ReLU stand-in computed inside
the jitted function, as in the train step. Prints the median of 5 calls of
each and their largest difference relative to the largest entry.
"""

import sys

import jax
import jax.numpy as jnp

from flaxdil import timing
from flaxdil.models import depthwise

size, channels, rate = map(int, sys.argv[1:4])
keys = jax.random.split(jax.random.key(0), 4)
pre = jax.random.normal(keys[0], (128, size, size, channels))
grad_y = jax.random.normal(keys[1], (128, size, size, channels))
scale = jax.random.normal(keys[2], (channels,))
shift = jax.random.normal(keys[3], (channels,))


def depthwise_input(pre):
  return jax.nn.relu(pre * scale + shift)


@jax.jit
def tap_by_tap(pre, grad_y):
  kernel = jnp.ones((3, 3, 1, channels))
  return depthwise._sliced_bwd(1, rate, (depthwise_input(pre), kernel),
                               grad_y)[1]


def sum_blocks(products, blocks):
  rows = products.shape[0] // blocks
  total = products[:rows]
  for j in range(1, blocks):
    total = total + products[j * rows:(j + 1) * rows]
  return jnp.concatenate([total, products[blocks * rows:]])


def one_pass(blocks):
  @jax.jit
  def kernel_grad(pre, grad_y):
    x = depthwise_input(pre)
    padded = jnp.pad(x, ((0, 0), (rate, rate), (rate, rate), (0, 0)))
    sums = [sum_blocks((padded[:, a * rate:a * rate + size,
                               b * rate:b * rate + size] * grad_y
                        ).reshape(-1, channels), blocks)
            for a in range(3) for b in range(3)]
    stacked = jnp.stack(sums, axis=1)
    return depthwise._sum_rows(stacked.reshape(stacked.shape[0], -1)
                               ).reshape(3, 3, 1, channels)
  return kernel_grad


def median_ms(fn):
  jax.block_until_ready(fn(pre, grad_y))
  return 1e3 * timing.median_seconds(
      lambda: jax.block_until_ready(fn(pre, grad_y)), 5)


reference = tap_by_tap(pre, grad_y)
row = [f'tap by tap {median_ms(tap_by_tap):.1f} ms']
for blocks in (2, 4, 8, 16):
  fn = one_pass(blocks)
  difference = float(jnp.max(jnp.abs(fn(pre, grad_y) - reference))
                     / jnp.max(jnp.abs(reference)))
  row.append(f'one pass, {blocks} rows {median_ms(fn):.1f} ms ({difference:.1e})')
print(f'{size}x{size}x{channels}, rate {rate}: ' + '; '.join(row))
