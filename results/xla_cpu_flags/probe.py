"""One XLA_FLAGS variant, in this process: the config's pmapped train step
(images/s, median of --runs runs of --steps steps, bin/bench.py's
TrainTiming on random data), the matmul ceiling (bench.py's 2048² matmul)
and a hash of the compiled train step's program text, so that a flag which
does not change the program shows as such. Prints one JSON line.

  XLA_FLAGS=--xla_cpu_prefer_vector_width=512 python results/xla_cpu_flags/probe.py \
      --config=configs/cifar10_fast.py --config.data_dir=../shared/tensorflow_datasets

`kinds` counts raw substrings of the program text ('ynn' also matches
inside other names); only its changes between variants would mean anything.
"""
import hashlib
import json
import os
import re

from absl import app, flags
from ml_collections import config_flags

from flaxdil.cli.flags import parse_flags

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.')
_RUNS = flags.DEFINE_integer('runs', 5, 'Timed runs; the median is reported.')
_STEPS = flags.DEFINE_integer('steps', 5, 'Steps per timed run.')


def main(argv):
  del argv
  from flaxdil.config import rules  # Imports JAX: after XLA_FLAGS is read.
  from flaxdil.experiments import benchmark
  from flaxdil.training.devices import Devices
  config = _CONFIG.value
  devices = Devices.of()
  info = rules.check_run(config, devices.all)
  timing = benchmark.TrainTiming(config, info, devices)
  ips = timing.images_per_sec(_RUNS.value, _STEPS.value)
  ceiling = benchmark.matmul_flops_per_sec()
  text = timing.compiled_text()
  kinds = {k: len(re.findall(k, text))
           for k in ('__xnn_fusion', 'xnn', 'ynn', 'onednn')}
  print(json.dumps({
      'xla_flags': os.environ.get('XLA_FLAGS', ''),
      'image_size': config.get('image_size'), 'conv_impl': config.conv_impl,
      'compile_s': round(timing.compile_seconds, 1),
      'images_per_sec': round(ips, 1),
      'step_ms': round(1e3 * config.batch_size / ips, 1),
      'matmul_gflops': round(ceiling / 1e9, 1),
      'program_sha': hashlib.sha1(text.encode()).hexdigest()[:10],
      'kinds': kinds}), flush=True)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
