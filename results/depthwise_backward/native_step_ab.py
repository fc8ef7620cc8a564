"""conv_impl 'fast' against 'native' (native_kernel_grad.diff applied), the
train step timed in one process,
interleaved, so that the host's drift (the matmul ceiling moved 143-188
GFLOP/s within minutes on machine D) falls on both alike.

  python results/depthwise_backward/native_step_ab.py --config=configs/cifar10.py:dilation=0 \
      --config.data_dir=../shared/tensorflow_datasets [--config.image_size=96] --rounds=8 --steps=3

Both steps are compiled first (bin/bench.py's TrainTiming: the pmapped
step on random data of the dataset's shape). Then each round times --steps
steps of each, their order alternating round by round. Prints one JSON
line: each impl's median step time, the median and range of the rounds'
ratios fast / native (> 1: native is faster).
"""
import json

import numpy as np
from absl import app, flags
from ml_collections import config_flags

from flaxdil.cli.flags import parse_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.')
_ROUNDS = flags.DEFINE_integer('rounds', 8, 'Interleaved rounds.')
_STEPS = flags.DEFINE_integer('steps', 3, 'Steps of each impl per round.')
IMPLS = ('fast', 'native')


def main(argv):
  del argv
  from flaxdil import timing
  from flaxdil.config import rules
  from flaxdil.experiments import benchmark
  from flaxdil.training.devices import Devices
  devices = Devices.of()
  timings = {}
  for impl in IMPLS:
    config = _CONFIG.value.copy_and_resolve_references()
    config.conv_impl = impl
    info = rules.check_run(config, devices.all)
    timings[impl] = benchmark.TrainTiming(config, info, devices)
    timings[impl].run_steps(_STEPS.value)  # Page faults, untimed.
  seconds = {impl: [] for impl in IMPLS}
  for round_ in range(_ROUNDS.value):
    for impl in IMPLS[::-1] if round_ % 2 else IMPLS:
      seconds[impl].append(timing.median_seconds(
          lambda t=timings[impl]: t.run_steps(_STEPS.value), 1) / _STEPS.value)
  ratios = np.array(seconds['fast']) / np.array(seconds['native'])
  print(json.dumps({
      'image_size': _CONFIG.value.get('image_size'),
      'dilation': _CONFIG.value.dilation,
      'step_ms': {impl: round(1e3 * float(np.median(s)), 1)
                  for impl, s in seconds.items()},
      'fast_over_native': {'median': round(float(np.median(ratios)), 3),
                           'min': round(float(ratios.min()), 3),
                           'max': round(float(ratios.max()), 3)},
      'rounds': _ROUNDS.value, 'steps': _STEPS.value,
      'cpu': timing.cpu_description(),
  }), flush=True)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
