"""Dilated depthwise convolution: the lax reference and an exact fast path.

Both compute, for a 3×3 kernel w of layout (3, 3, 1, C), tap spacing r (lax's
rhs_dilation), stride s and symmetric zero padding r:

  y[n, i, j, c] = Σ_{a,b} x[n, s·i + (a-1)·r, s·j + (b-1)·r, c] · w[a, b, 0, c]

with x read as zero outside the image.

`depthwise_lax` (conv_impl 'lax') is one `lax.conv_general_dilated(feature_group_count=C)`.
`depthwise_sliced` (conv_impl 'fast') writes the same sum as nine strided slices of the input,
each multiplied by its tap and zero-padded back to the output size, with a
hand-written backward pass. It exists because XLA:CPU lowers grouped
convolutions, and above all their kernel gradient, to dense C×C convolutions
(jax-ml/jax#13800, #26266; google/flax#4207); the sliced form costs 9 fused
multiply-adds per output, like the arithmetic it stands for. Taps that only
ever read padding (large r on small maps) are skipped: they add zero. The
kernel gradient is summed chunk by chunk of the batch, each chunk's nine
taps together, so that its passes over x and grad_y stay in cache.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax

from flaxdil.models.dilation import KERNEL_SIZE, padding


def depthwise_lax(x: jax.Array, kernel: jax.Array, stride: int,
                  rate: int) -> jax.Array:
  """The reference: a grouped convolution with rhs_dilation=rate."""
  pad = padding(rate)
  return lax.conv_general_dilated(
      x, kernel, window_strides=(stride, stride),
      padding=((pad, pad), (pad, pad)), rhs_dilation=(rate, rate),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      feature_group_count=x.shape[-1])


def _tap_window(size: int, out_size: int, offset: int, stride: int):
  """For one tap along one axis: which outputs read real input, and where.

  Output i reads input stride·i + offset. Returns (first_out, count,
  first_in), or None when every read falls in the padding.
  """
  first_out = max(0, -(-(-offset) // stride))   # ceil(-offset / stride), ≥ 0
  last_out = min(out_size - 1, (size - 1 - offset) // stride)
  if last_out < first_out:
    return None
  return first_out, last_out - first_out + 1, stride * first_out + offset


def tap_windows(height: int, width: int, stride: int, rate: int):
  """(a, b, row window, column window) for each tap that reads real input."""
  out_h, out_w = -(-height // stride), -(-width // stride)
  taps = []
  pad = padding(rate)
  for a in range(KERNEL_SIZE):
    rows = _tap_window(height, out_h, a * rate - pad, stride)
    for b in range(KERNEL_SIZE):
      cols = _tap_window(width, out_w, b * rate - pad, stride)
      if rows is not None and cols is not None:
        taps.append((a, b, rows, cols))
  return out_h, out_w, taps


def _input_slice(x, rows, cols, stride):
  (_, n_rows, row0), (_, n_cols, col0) = rows, cols
  return lax.slice(
      x, (0, row0, col0, 0),
      (x.shape[0], row0 + stride * (n_rows - 1) + 1,
       col0 + stride * (n_cols - 1) + 1, x.shape[3]),
      (1, stride, stride, 1))


def _output_slice(y, rows, cols):
  (out_row0, n_rows, _), (out_col0, n_cols, _) = rows, cols
  return lax.slice(y, (0, out_row0, out_col0, 0),
                   (y.shape[0], out_row0 + n_rows, out_col0 + n_cols, y.shape[3]))


def _pad_to(part, rows, cols, out_h, out_w):
  """Places a tap's (N, n_rows, n_cols, C) contribution in the output frame."""
  (out_row0, n_rows, _), (out_col0, n_cols, _) = rows, cols
  zero = jnp.zeros((), part.dtype)
  return lax.pad(part, zero, ((0, 0, 0), (out_row0, out_h - out_row0 - n_rows, 0),
                              (out_col0, out_w - out_col0 - n_cols, 0), (0, 0, 0)))


def _sum_rows(x: jax.Array) -> jax.Array:
  """Σ over the leading axis by repeated halving.

  XLA:CPU reduces (N·H·W, C) → (C) an order of magnitude slower than this
  sequence of elementwise adds, which keeps every step vectorised over C.
  """
  while x.shape[0] > 1:
    if x.shape[0] % 2:
      x = jnp.concatenate([x[:1] + x[-1:], x[1:-1]])
    half = x.shape[0] // 2
    x = x[:half] + x[half:]
  return x[0]


def _forward(x, kernel, stride, rate):
  height, width = x.shape[1:3]
  out_h, out_w, taps = tap_windows(height, width, stride, rate)
  # The centre tap always reads data, so `taps` is never empty.
  parts = [_pad_to(_input_slice(x, rows, cols, stride) * kernel[a, b, 0],
                   rows, cols, out_h, out_w) for a, b, rows, cols in taps]
  y = parts[0]
  for part in parts[1:]:
    y = y + part
  return y


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def depthwise_sliced(x: jax.Array, kernel: jax.Array, stride: int,
                     rate: int) -> jax.Array:
  """Exactly `depthwise_lax`, as nine slices with a hand-written backward."""
  return _forward(x, kernel, stride, rate)


def _sliced_fwd(x, kernel, stride, rate):
  return _forward(x, kernel, stride, rate), (x, kernel)


# The kernel gradient runs over chunks of the batch, about this many
# elements of x each (256 KB of float32): all nine taps are summed over one
# chunk while it sits in the core's cache. Tap by tap over the whole batch,
# each of the nine passes streamed x and grad_y from memory; that made the
# backward pass grow 23x from 32x32 to 96x96 for 9x the pixels
# (results/op_profile/). Chunks of fewer than two images cost more in loop
# steps than they save (results/depthwise_backward/).
_CHUNK_ELEMENTS = 1 << 16


def _images_per_chunk(num_images: int, per_image: int) -> int:
  """A power of two dividing num_images; num_images when chunks gain nothing."""
  if num_images * per_image <= 4 * _CHUNK_ELEMENTS:
    return num_images
  images = 1
  while num_images % (2 * images) == 0 and (
      images < 2 or images * per_image < _CHUNK_ELEMENTS):
    images *= 2
  return images


def _tap_sums(x, grad_y, stride, taps, acc_dtype):
  """(len(taps), C): Σ over images and positions of each tap's x · grad_y."""

  def chunk_sums(x, grad_y):
    return jnp.stack([
        _sum_rows((_input_slice(x, rows, cols, stride)
                   * _output_slice(grad_y, rows, cols)
                   ).astype(acc_dtype).reshape(-1, x.shape[3]))
        for _, _, rows, cols in taps])

  num_images = x.shape[0]
  images = _images_per_chunk(num_images, x[0].size)
  if images == num_images:
    return chunk_sums(x, grad_y)
  chunks = num_images // images
  per_chunk = lax.map(
      lambda pair: chunk_sums(*pair),
      (x.reshape(chunks, images, *x.shape[1:]),
       grad_y.reshape(chunks, images, *grad_y.shape[1:])))
  return _sum_rows(per_chunk)


def _sliced_bwd(stride, rate, residuals, grad_y):
  x, kernel = residuals
  height, width = x.shape[1:3]
  _, _, taps = tap_windows(height, width, stride, rate)
  grad_x = None
  for a, b, rows, cols in taps:
    g = _output_slice(grad_y, rows, cols)
    # d/dx: the transpose of a strided slice is a pad with interior zeros.
    (_, n_rows, row0), (_, n_cols, col0) = rows, cols
    zero = jnp.zeros((), x.dtype)
    part = lax.pad(g * kernel[a, b, 0], zero, (
        (0, 0, 0),
        (row0, height - row0 - stride * (n_rows - 1) - 1, stride - 1),
        (col0, width - col0 - stride * (n_cols - 1) - 1, stride - 1),
        (0, 0, 0)))
    grad_x = part if grad_x is None else grad_x + part
  # Accumulate in at least float32: bfloat16 sums of N·H·W terms lose bits.
  acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
  sums = _tap_sums(x, grad_y, stride, taps, acc_dtype)
  grad_kernel = jnp.zeros(kernel.shape, acc_dtype)
  for i, (a, b, _, _) in enumerate(taps):
    grad_kernel = grad_kernel.at[a, b, 0].set(sums[i])
  return grad_x, grad_kernel.astype(kernel.dtype)


depthwise_sliced.defvjp(_sliced_fwd, _sliced_bwd)
