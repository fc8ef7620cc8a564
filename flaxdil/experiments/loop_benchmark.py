"""A real training's loop against its bare step (bin/bench_loop.py): the
images/s that a training on the real data logs in metrics.jsonl, and the
step's images/s as bin/bench.py times it, in turns on one machine.

bin/bench.py's own loop trains on random data; this runs what users run
(`python -m flaxdil` on the prepared dataset), so a per-step cost that only
real data, or a real split's size, brings shows here.
"""

from __future__ import annotations

import json
import statistics

import ml_collections

from flaxdil import timing
from flaxdil.config import rules
from flaxdil.errors import FlaxdilError
from flaxdil.experiments.benchmark import TrainTiming
from flaxdil.experiments.input_benchmark import training_run
from flaxdil.training.devices import Devices


def run(config: ml_collections.ConfigDict, main_args: list[str], steps: int,
        log_every: int, repeats: int = 3, step_runs: int = 3,
        step_steps: int = 20) -> dict:
  """`repeats` pairs of (a training of `steps` steps with main_args, the
  step timed right after it); returns and prints the medians and the
  loop ÷ step ratio of each pair.

  Args:
    config: the config main_args give (flaxdil.config.files.from_main_args).
    main_args: bin/main.py's arguments, without --workdir.
    steps, log_every: each training's budget and logging interval; its rate
      is the median of its logged images/s after the first interval.
    step_runs, step_steps: the step's timing, as bin/bench.py's --runs and
      --steps.
  """
  counts = {'--repeats': repeats, '--runs': step_runs,
            '--step_steps': step_steps, '--log_every': log_every}
  bad = [f'{flag}={value}' for flag, value in counts.items() if value < 1]
  if bad or steps < 2 * log_every:
    raise FlaxdilError(
        f'{", ".join(bad) or f"--steps={steps}"}: each count must be >= 1, '
        'and --steps at least twice --log_every (the first logged interval '
        'holds the compile and is not counted).')
  print(timing.cpu_description(), flush=True)
  devices = Devices.of()
  step = TrainTiming(config, rules.check_run(config, devices.all), devices)
  pairs = []
  for _ in range(repeats):  # In turns: the machine's speed drifts.
    loop = training_run(main_args, None, steps, log_every)
    bare = step.images_per_sec(step_runs, step_steps)
    pairs.append({'loop_images_per_sec': loop['images_per_sec'],
                  'step_images_per_sec': bare,
                  'loop_share_of_step': loop['images_per_sec'] / bare,
                  'training_wall_seconds': loop['wall_seconds']})
    print(f'  training {loop["images_per_sec"]:,.1f} images/s in its loop, '
          f'step {bare:,.1f} images/s: '
          f'{pairs[-1]["loop_share_of_step"]:.1%}', flush=True)
  share = statistics.median(p['loop_share_of_step'] for p in pairs)
  print(f'real training ÷ step: {share:.1%} (median of {repeats} pairs; '
        f'{steps} steps of batch {config.batch_size}, '
        f'{config.steps_per_dispatch} per dispatch)')
  result = {'cpu': timing.cpu_description(), 'main_args': main_args,
            'steps': steps, 'log_every': log_every, 'pairs': pairs,
            'loop_share_of_step': share, 'batch_size': config.batch_size,
            'steps_per_dispatch': config.steps_per_dispatch,
            'step_runs': step_runs, 'step_steps': step_steps}
  print(json.dumps(result), flush=True)
  return result
