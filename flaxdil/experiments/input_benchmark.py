"""What each input pipeline costs on this machine (bin/bench_input.py):
peak host memory and in-loop images/s of a real training under 'device'
and 'stream', and the stream's loader alone, by number of threads.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import ml_collections
import numpy as np

from flaxdil import timing
from flaxdil.data import source, stream
from flaxdil.data.batches import BatchOrder
from flaxdil.data.records import RecordReader


def training_run(main_args: list[str], pipeline: str | None, steps: int,
                 log_every: int) -> dict:
  """One training process (`python -m flaxdil`, main_args plus the pipeline
  (None: the config's) and a budget of `steps`, validation and a checkpoint
  only at the end, no time-based saves): its peak RSS and the median of its
  logged images/s after the first interval (which holds the compile)."""
  with tempfile.TemporaryDirectory() as workdir, tempfile.TemporaryFile(
      'w+') as log:
    start = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, '-m', 'flaxdil', *main_args,
         *([f'--config.input_pipeline={pipeline}'] if pipeline else []),
         f'--config.num_train_steps={steps}',
         f'--config.log_every_steps={log_every}',
         f'--config.eval_every_steps={steps}',
         '--config.checkpoint_every_minutes=0', f'--workdir={workdir}'],
        stdout=log, stderr=subprocess.STDOUT, text=True)
    # wait4: this child's own resource use, its peak RSS among it.
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
      log.seek(0)
      raise RuntimeError(f'the {pipeline} run failed:\n{log.read()[-3000:]}')
    with open(os.path.join(workdir, 'metrics.jsonl')) as f:
      rates = [r['images_per_sec'] for r in map(json.loads, f)
               if r['split'] == 'train']
  return {'pipeline': pipeline, 'images_per_sec': statistics.median(rates[1:]),
          'peak_rss_mb': usage.ru_maxrss / 1024,
          'wall_seconds': time.monotonic() - start}


def loader_images_per_sec(config: ml_collections.ConfigDict, threads: int,
                          steps: int) -> float:
  """The stream's reading alone, as one process of one device reads a run's
  steps: images/s over `steps` steps of config.batch_size rows, after a
  first step (which opens the files)."""
  reader = RecordReader(source.data_source(config, config.train_split),
                        config.train_split, training=True)
  kept, _ = source.holdout(len(reader), config.validation_size)
  order = BatchOrder(jax.random.key(config.seed), len(kept),
                     config.batch_size)
  batches = stream.train_batches(
      reader, kept, order, np.arange(config.batch_size), 0, steps + 1,
      threads, max(threads, config.stream_prefetch))
  next(batches)
  start = time.perf_counter()
  for _ in range(steps):
    next(batches)
  return steps * config.batch_size / (time.perf_counter() - start)


def run(config: ml_collections.ConfigDict, main_args: list[str], steps: int,
        log_every: int, loader_steps: int, threads: list[int],
        repeats: int = 3) -> dict:
  print(timing.cpu_description(), flush=True)
  loader = {}
  for count in threads:
    loader[count] = loader_images_per_sec(config, count, loader_steps)
    print(f'  loader alone, {count} thread(s): {loader[count]:,.0f} images/s',
          flush=True)
  runs = {'stream': [], 'device': []}
  for _ in range(repeats):  # In turns: the machine's speed drifts.
    for pipeline in ('stream', 'device'):
      runs[pipeline].append(training_run(main_args, pipeline, steps,
                                         log_every))
      print(f'  {pipeline}: {runs[pipeline][-1]["images_per_sec"]:,.1f} '
            f'images/s in the loop, peak RSS '
            f'{runs[pipeline][-1]["peak_rss_mb"]:,.0f} MB', flush=True)
  ratios = [s['images_per_sec'] / d['images_per_sec']
            for s, d in zip(runs['stream'], runs['device'])]
  ratio = statistics.median(ratios)
  peak = {p: statistics.median(r['peak_rss_mb'] for r in runs[p])
          for p in runs}
  print(f'stream / device in the loop: {ratio:.3f} (median of {repeats} '
        f'pairs); peak RSS (median) {peak["stream"]:,.0f} vs '
        f'{peak["device"]:,.0f} MB')
  result = {'cpu': timing.cpu_description(), 'main_args': main_args,
            'steps': steps, 'log_every': log_every, 'runs': runs,
            'stream_over_device': ratio, 'stream_over_device_by_pair': ratios,
            'peak_rss_mb': peak,
            'loader_images_per_sec_by_threads': loader,
            'loader_steps': loader_steps, 'batch_size': config.batch_size}
  print(json.dumps(result), flush=True)
  return result
