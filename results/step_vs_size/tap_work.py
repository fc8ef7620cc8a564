"""How the fast path's depthwise work grows with the image, tap by tap.

    python results/step_vs_size/tap_work.py > tap_work.txt

The fast path (flaxdil/models/depthwise.py) computes each tap only over the
outputs whose input falls inside the image, and skips a tap whose every
read is padding. So its depthwise work is not 9 multiply-adds per output:
on a small map a tap near the border covers fewer outputs, and at tap
spacing 5 (δ = 2) on a 4×4 map only the centre tap is left. Images 3× as
wide have 9× the pixels but proportionally smaller borders, so the
depthwise work grows by more than 9×, and that part of the step cannot
keep to the pixel ratio whatever the kernel. The 1×1 convolutions have no
border and grow exactly 9×.

Counts per image (the batch multiplies every figure alike), from the
network of configs/cifar10.py and the fast path's own `tap_windows`.

The floor: the 32×32 step's op times by part, as `bin/profile_ops.py`
measured them (../op_profile/prof_d{0,2}_32.txt), each grown by the least
its work allows: a block's depthwise ops by that block's depthwise ratio,
the fixed-size work (optimizer, metrics, classifier) not at all, the rest
(1×1 convolutions, BatchNorm, ReLU, pooling) by the pixels. A step whose
every op ran as fast per unit of work at 96×96 as at 32×32 would cost that
many times the 32×32 step. Arithmetic on recorded figures: nothing is
compiled or timed here.
"""

from __future__ import annotations

import importlib.util
import json
import pathlib

from flaxdil.models import dilation as dilation_lib
from flaxdil.models.depthwise import tap_windows

ROOT = pathlib.Path(__file__).resolve().parents[2]


def paper_config():
  spec = importlib.util.spec_from_file_location(
      'cifar10_config', ROOT / 'configs' / 'cifar10.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def work(size: int, delta: int, widths, strides):
  """Per block: (input side, taps kept, in-image depthwise multiply-adds,
  pointwise multiply-adds), for one image of size×size."""
  rate = dilation_lib.lax_dilation(delta)
  side, channels, blocks = size, 3, []
  for width, stride in zip(widths, strides):
    out_h, out_w, taps = tap_windows(side, side, stride, rate)
    depthwise = channels * sum(rows[1] * cols[1] for _, _, rows, cols in taps)
    blocks.append((side, len(taps), depthwise, out_h * out_w * channels * width))
    side, channels = out_h, width
  return blocks


def op_times(delta: int, size: int):
  """(block, part, seconds per step) from a recorded profile's JSON line."""
  path = ROOT / 'results' / 'op_profile' / f'prof_d{delta}_{size}.txt'
  record = json.loads(next(line for line in path.read_text().splitlines()
                           if line.startswith('{')))
  return [(block, part, seconds) for _, block, part, seconds in record['parts']]


def floor_ratio(delta: int, size: int, widths, strides) -> tuple[float, float]:
  """(the least size÷32 op-time ratio, the same with the depthwise at the
  pixel ratio), from the 32×32 profile."""
  pixels = (size / 32) ** 2
  grows = {f'block{i + 1}': big[2] / small[2] for i, (small, big) in enumerate(
      zip(work(32, delta, widths, strides), work(size, delta, widths, strides)))}
  fixed = ('outside the network', 'classifier')
  parts = op_times(delta, 32)
  total = sum(seconds for *_, seconds in parts)
  floor = at_pixels = 0.0
  for block, part, seconds in parts:
    growth = 1.0 if block in fixed else pixels
    floor += seconds * (grows[block] if part == 'depthwise' else growth)
    at_pixels += seconds * growth
  return floor / total, at_pixels / total


def main():
  config = paper_config()
  widths, strides = config.widths, config.strides
  for delta in (0, 2):
    by_size = {size: work(size, delta, widths, strides) for size in (32, 64, 96)}
    print(f'δ = {delta} (tap spacing {dilation_lib.lax_dilation(delta)})')
    print('block | side 32/64/96 | taps kept 32/64/96 | depthwise MACs 32 | '
          '64 ÷ 32 | 96 ÷ 32')
    for i in range(len(widths)):
      b32, b64, b96 = (by_size[s][i] for s in (32, 64, 96))
      print(f'{i + 1} | {b32[0]}/{b64[0]}/{b96[0]} | {b32[1]}/{b64[1]}/{b96[1]}'
            f' | {b32[2]:,} | {b64[2] / b32[2]:.2f}× | {b96[2] / b32[2]:.2f}×')
    totals = {s: (sum(b[2] for b in blocks), sum(b[3] for b in blocks))
              for s, blocks in by_size.items()}
    for size, pixels in ((64, 4), (96, 9)):
      dw, pw = (totals[size][k] / totals[32][k] for k in (0, 1))
      print(f'{size}×{size} ÷ 32×32 ({pixels}× the pixels): depthwise '
            f'{dw:.2f}×, pointwise {pw:.2f}×, both '
            f'{sum(totals[size]) / sum(totals[32]):.3f}×')
    print(f'depthwise share of the multiply-adds at 32×32: '
          f'{totals[32][0] / sum(totals[32]):.2%}')
    for size, pixels in ((64, 4), (96, 9)):
      floor, at_pixels = floor_ratio(delta, size, widths, strides)
      print(f'{size}×{size} step ÷ 32×32 step, least op time (the 32×32 '
            f'profile grown by each part\'s work): {floor:.2f}× (with the '
            f'depthwise grown {pixels}× instead: {at_pixels:.2f}×)')
    print()


if __name__ == '__main__':
  main()
