"""The paper's dilation rate δ and everything derived from it.

Vocabulary used throughout flaxdil:
  * ``dilation`` (δ) is the *paper's* rate: an S×S filter with rate δ spans
    C = (S+1)·δ + S pixels, i.e. (S+1)·δ zeros are spread between the S taps
    of each row. δ = 0 is an ordinary 3×3 filter.
  * ``lax_dilation`` is what `lax.conv_general_dilated(rhs_dilation=...)`
    expects: the distance between neighbouring taps, 2δ + 1 for S = 3.

Every function here assumes a valid δ: the config's is checked once, before
anything is built (flaxdil.config.rules).
"""

from __future__ import annotations

KERNEL_SIZE = 3  # S in the paper: every depthwise filter is 3×3.


def per_block(dilation, num_blocks: int) -> tuple[int, ...]:
  """config.dilation → one δ per basic structure.

  An int is the paper's setting (the same δ in every module, Table 2); a
  tuple gives each module its own δ (our extension, e.g.
  configs/cifar10_mixed.py).
  """
  if isinstance(dilation, (tuple, list)):
    return tuple(dilation)
  return (dilation,) * num_blocks


def filter_span(delta: int) -> int:
  """The paper's C = (S+1)·δ + S: the extent of one dilated S×S filter."""
  return (KERNEL_SIZE + 1) * delta + KERNEL_SIZE


def lax_dilation(delta: int) -> int:
  """δ → lax's rhs_dilation (tap spacing r), from (S-1)·r + 1 = C.

  For S = 3 that is r = 2δ + 1, an integer for every δ.
  """
  return (filter_span(delta) - 1) // (KERNEL_SIZE - 1)


def span_of_taps(first: int, last: int, rate: int) -> int:
  """The extent of the taps first..last (indices along one axis) at spacing
  `rate`: the full filter's span for 0..S-1."""
  return (last - first) * rate + 1


def padding(rate: int) -> int:
  """Zero padding on each side that keeps the size (divides it by the
  stride): half the span of a filter with tap spacing `rate`."""
  return span_of_taps(0, KERNEL_SIZE - 1, rate) // 2


def grow_receptive_field(field: int, jump: int, span: int, stride: int
                         ) -> tuple[int, int]:
  """One layer of a plain chain: (receptive field, input pixels between
  neighbouring outputs) after a layer of this span and stride."""
  return field + (span - 1) * jump, jump * stride
