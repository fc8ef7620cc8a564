"""What each XLA fusion of the compiled train step computes, by network part.

  python results/op_profile/fusions.py --config=configs/cifar10.py [--config.image_size=96]

bin/profile_ops.py charges a fusion's time to the part its root op names.
A fusion can hold the work of other parts too: this prints, for every kind
of fusion charged to the depthwise convolution's backward pass or to the
ReLU's, how many there are, what their output is (activations N×H×W×C, a
kernel 3×3×1×C, or rows×C: a kernel gradient's partial sums), how many of
the input gradient's padded taps (the backward pass's `pad` ops) they
hold, and the network parts whose ops they hold. It compiles the step and
runs nothing.
"""

import collections
import re

from absl import app, flags, logging
from ml_collections import config_flags

from flaxdil.cli.flags import parse_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.',
                                          lock_config=True)
_COMPUTATION = re.compile(r'^(%[\w.\-]+) \(.*\{$')
# A fusion's output is one array (`f32[128,8,8,512]{...}`) or, for a
# multi-output fusion, a tuple (`(f32[...], ...)`), whose dims are not read.
_FUSION = re.compile(r'^\s*(?:ROOT )?%([\w\-]+?)(?:\.\d+)? = '
                     r'(?:\w+\[([\d,]*)\]|(\())'
                     r'.*fusion\(.*calls=(%[\w.\-]+).*?op_name="([^"]*)"')
_OP_NAME = re.compile(r'op_name="([^"]*)"')
_KERNEL = re.compile(r'= \w+\[3,3,1,\d+\]')


def main(argv) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)
  from flaxdil.config import rules  # Imports JAX: after flags.
  from flaxdil.experiments import op_profile
  from flaxdil.experiments.benchmark import TrainTiming
  from flaxdil.training.devices import Devices
  config = _CONFIG.value
  devices = Devices.of()
  hlo = TrainTiming(config, rules.check_run(config, devices.all),
                    devices).compiled_text()
  inside, pads = collections.defaultdict(set), collections.Counter()
  current = None
  for line in hlo.splitlines():
    start = _COMPUTATION.match(line)
    if start:
      current = start.group(1)
    elif line.startswith('}'):
      current = None
    elif current:
      for op_name in _OP_NAME.findall(line):
        pass_, _, part = op_profile.attribute(op_name)
        if pass_:   # Parameters and the like name no part of the network.
          inside[current].add(f'{part} {pass_}')
        # The input gradient's taps are pads of activations; the kernel
        # gradient's first tap is padded into the 3×3×1×C kernel.
        if ((pass_, part) == ('backward', 'depthwise') and ' pad(' in line
            and not _KERNEL.search(line)):
          pads[current] += 1
  rows = collections.Counter()
  for line in hlo.split('\nENTRY', 1)[1].splitlines():
    fusion = _FUSION.match(line)
    if not fusion:
      continue
    kind, dims, tuple_, calls, op_name = fusion.groups()
    pass_, _, part = op_profile.attribute(op_name)
    if pass_ != 'backward' or part not in ('depthwise', 'relu'):
      continue
    shape = [int(d) for d in dims.split(',')] if dims else []
    output = ('a tuple' if tuple_ else
              'rows×C' if len(shape) == 2 else
              'kernel' if shape[:3] == [3, 3, 1] else
              'N×H×W×C' if len(shape) == 4 else f'{len(shape)}-D')
    rows[kind, f'{part} {pass_}', output, pads[calls],
         ', '.join(sorted(inside[calls]))] += 1
  print('| fusion kind | charged to | output | count | input-gradient taps in each '
        '| holds ops of |')
  print('|---|---|---|---|---|---|')
  for (kind, charged, output, taps, holds), count in sorted(rows.items()):
    print(f'| {kind} | {charged} | {output} | {count} | {taps} | {holds} |')


if __name__ == '__main__':
  flags.mark_flag_as_required('config')
  app.run(main, flags_parser=parse_flags)
