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
layers of configs/cifar10.py's network as `flaxdil.inspection.summary`
traces them, and the fast path's own `tap_windows`.

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

import json
import pathlib

from flaxdil import models
from flaxdil.config import files
from flaxdil.inspection import summary
from flaxdil.models import dilation as dilation_lib
from flaxdil.models.depthwise import tap_windows

ROOT = pathlib.Path(__file__).resolve().parents[2]
SIZES = (32, 64, 96)


def work(size: int, delta: int):
  """Per block: (input side, taps kept, in-image depthwise multiply-adds,
  pointwise multiply-adds), for one image of size×size, from the layers of
  configs/cifar10.py's network as `flaxdil.inspection.summary` traces them."""
  config = files.load(f'configs/cifar10.py:dilation={delta}')
  config.image_size = size
  layers, _ = summary.trace_layers(
      models.create_model(config, 10, input_size=size), (size, size, 3))
  blocks = []
  for layer in layers:
    if layer.kind == 'depthwise_conv':
      _, _, taps = tap_windows(*layer.input_hw, layer.stride,
                               layer.lax_dilation)
      blocks.append([layer.input_hw[0], len(taps), layer.in_channels * sum(
          rows[1] * cols[1] for _, _, rows, cols in taps)])
    elif layer.name.endswith('/pointwise'):
      blocks[-1].append(layer.macs)
  return blocks


def op_times(delta: int, size: int):
  """(block, part, seconds per step) from a recorded profile's JSON line."""
  path = ROOT / 'results' / 'op_profile' / f'prof_d{delta}_{size}.txt'
  record = json.loads(next(line for line in path.read_text().splitlines()
                           if line.startswith('{')))
  return [(block, part, seconds) for _, block, part, seconds in record['parts']]


def floor_ratio(delta: int, small, big, pixels: float) -> tuple[float, float]:
  """(the least op-time ratio of a step on `big`'s images to one on
  `small`'s (32×32, the profile's), the same with the depthwise at the
  pixel ratio), from the 32×32 profile and the two sizes' `work`."""
  grows = {f'block{i + 1}': b[2] / s[2] for i, (s, b) in enumerate(zip(small, big))}
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
  for delta in (0, 2):
    by_size = {size: work(size, delta) for size in SIZES}
    print(f'δ = {delta} (tap spacing {dilation_lib.lax_dilation(delta)})')
    print('block | side 32/64/96 | taps kept 32/64/96 | depthwise MACs 32 | '
          '64 ÷ 32 | 96 ÷ 32')
    for i, (b32, b64, b96) in enumerate(zip(*(by_size[s] for s in SIZES))):
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
      floor, at_pixels = floor_ratio(delta, by_size[32], by_size[size], pixels)
      print(f'{size}×{size} step ÷ 32×32 step, least op time (the 32×32 '
            f'profile grown by each part\'s work): {floor:.2f}× (with the '
            f'depthwise grown {pixels}× instead: {at_pixels:.2f}×)')
    print()


if __name__ == '__main__':
  main()
