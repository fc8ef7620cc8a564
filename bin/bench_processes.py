"""Training throughput of one run laid out as P processes x D devices, on
this machine (flaxdil.experiments.local_launch: localhost processes, fake CPU
devices).

  python bin/bench_processes.py --layouts=1x1,1x2,2x1 --repeats=3 -- \
      --config=configs/cifar10.py --config.data_dir=../shared/tensorflow_datasets \
      --config.train_split=train[:10000]

Each layout trains the same run for --steps steps (validation and a
checkpoint only at the end) in a fresh workdir; its rate is the median of
the logged images/s after the first interval (which holds the compile). The
table gives the median over --repeats; the last line printed is one JSON
object.
"""

import json
import os
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

_LAYOUTS = flags.DEFINE_list('layouts', ['1x1', '1x2', '2x1'],
                             'PROCESSESxDEVICES, comma-separated.')
_STEPS = flags.DEFINE_integer('steps', 60, 'Training steps per run.')
_LOG_EVERY = flags.DEFINE_integer('log_every', 10, 'Steps per logged rate.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Runs per layout (median).')
_TIMEOUT = flags.DEFINE_integer('timeout', 900, 'Seconds per run at most.')


def _rate(workdir: str) -> float:
  with open(os.path.join(workdir, 'metrics.jsonl')) as f:
    rates = [r['images_per_sec'] for r in map(json.loads, f)
             if r['split'] == 'train']
  return float(np.median(rates[1:]))


def main(argv) -> None:
  main_args = argv[1:]
  if not any(a.startswith('--config=') for a in main_args):
    raise app.UsageError('give bin/main.py\'s arguments after --, '
                         'at least --config=...')
  from flaxdil.experiments.local_launch import LocalRun
  from flaxdil.timing import cpu_description
  steps = _STEPS.value
  run_args = [*main_args, f'--config.num_train_steps={steps}',
              f'--config.log_every_steps={_LOG_EVERY.value}',
              f'--config.eval_every_steps={steps}',
              f'--config.checkpoint_every_steps={steps}']
  print(cpu_description(), flush=True)
  results = {}
  with tempfile.TemporaryDirectory() as root:
    for layout in _LAYOUTS.value:
      processes, devices = map(int, layout.split('x'))
      rates = []
      for repeat in range(_REPEATS.value):
        workdir = os.path.join(root, f'{layout}-{repeat}')
        start = time.monotonic()
        run = LocalRun(processes, devices, [*run_args, f'--workdir={workdir}'],
                       root, f'{layout}-{repeat}')
        codes = run.wait(_TIMEOUT.value)
        if codes != [0] * processes:
          sys.exit(f'error: layout {layout} exited {codes}:\n{run.output()}')
        rates.append(_rate(workdir))
        print(f'  {layout} run {repeat + 1}: {rates[-1]:8.1f} images/s '
              f'({time.monotonic() - start:.0f} s with start-up)', flush=True)
      results[layout] = {'processes': processes, 'devices_per_process':
                         devices, 'images_per_sec_median':
                         float(np.median(rates)), 'images_per_sec_runs': rates}
  base = results[_LAYOUTS.value[0]]['images_per_sec_median']
  print(f'{"layout":>8s} {"images/s":>10s} {"vs " + _LAYOUTS.value[0]:>8s}')
  for layout, r in results.items():
    print(f'{layout:>8s} {r["images_per_sec_median"]:10.1f} '
          f'{r["images_per_sec_median"] / base:8.2f}')
  print(json.dumps({'cpu': cpu_description(), 'main_args': main_args,
                    'steps': steps, 'repeats': _REPEATS.value,
                    'layouts': results}))


if __name__ == '__main__':
  app.run(main)
