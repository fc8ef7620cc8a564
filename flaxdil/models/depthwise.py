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
ever read padding (large r on small maps) are skipped: they add zero.
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


def _sliced_bwd(stride, rate, residuals, grad_y):
  x, kernel = residuals
  height, width = x.shape[1:3]
  _, _, taps = tap_windows(height, width, stride, rate)
  grad_x = None
  # Accumulate in at least float32: bfloat16 sums of N·H·W terms lose bits.
  acc_dtype = jnp.promote_types(x.dtype, jnp.float32)
  grad_kernel = jnp.zeros(kernel.shape, acc_dtype)
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
    products = (_input_slice(x, rows, cols, stride) * g).astype(acc_dtype)
    grad_kernel = grad_kernel.at[a, b, 0].set(
        _sum_rows(products.reshape(-1, x.shape[3])))
  return grad_x, grad_kernel.astype(kernel.dtype)


depthwise_sliced.defvjp(_sliced_fwd, _sliced_bwd)
