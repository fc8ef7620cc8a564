"""The kernel gradient alone, per block of the paper's network: the fast
path's nine halving sums (depthwise._sliced_bwd) against the C++ pass
(native_kernel_grad.diff applied), at batch 128 on random data.

  python results/depthwise_backward/native_kernel.py SIZE RATE

Each row: medians of 5 jitted calls, the largest difference relative to
the largest entry, and whether two native calls gave the same bits.
"""
import sys

import jax
import numpy as np

from flaxdil import timing
from flaxdil.models import depthwise, native

size, rate = int(sys.argv[1]), int(sys.argv[2])
CHANNELS = (3, 32, 64, 128, 256, 512, 512, 1024, 1024)
STRIDES = (1, 2, 1, 2, 1, 2, 1, 1, 1)


def median_ms(fn, *args, calls=5):
  jax.block_until_ready(fn(*args))
  return 1e3 * timing.median_seconds(
      lambda: jax.block_until_ready(fn(*args)), calls)


tot = [0, 0]
for block, (c, stride) in enumerate(zip(CHANNELS, STRIDES), 1):
  k = jax.random.split(jax.random.key(block), 3)
  x = jax.random.normal(k[0], (128, size, size, c))
  kern = jax.random.normal(k[1], (3, 3, 1, c))
  g = jax.random.normal(k[2], depthwise.depthwise_sliced(x, kern, stride, rate).shape)
  fast = jax.jit(lambda x, kk, g: depthwise._sliced_bwd(stride, rate, (x, kk), g)[1])
  nat = jax.jit(lambda x, g: native.depthwise_kernel_grad(x, g, stride, rate))
  tf, tn = median_ms(fast, x, kern, g), median_ms(nat, x, g)
  want = np.asarray(fast(x, kern, g), np.float64)
  got = np.asarray(nat(x, g), np.float64)
  got2 = np.asarray(nat(x, g), np.float64)
  diff = np.max(np.abs(got - want)) / np.max(np.abs(want))
  tot[0] += tf; tot[1] += tn
  print(f'{block} {size}x{size}x{c} s{stride}: fast {tf:.1f} ms native {tn:.1f} ms {tf/tn:.2f}x  rel diff {diff:.1e} deterministic {np.array_equal(got, got2)}', flush=True)
  size = -(-size // stride)
print(f'all: fast {tot[0]:.1f} native {tot[1]:.1f} {tot[0]/tot[1]:.2f}x')
