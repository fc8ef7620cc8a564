"""Time to accuracy (bin/speedrun.py): N seeds of one config, each a fresh
training process timed from its start to its printed test accuracy, and
their table (`table`).

airbench's rules keep the number honest, and a config meets them by its
fields: the schedule is fixed before the run (num_epochs or
num_train_steps, no early stop); nothing is selected on the test split
(with validation_size=0 nothing is selected at all, and the final weights,
the EMA where kept, are tested once at the end); the time runs end to end:
process start, data read, compile, training and the final evaluation. A
resumed run would not be timed end to end, so a seed never resumes.

A speedrun does resume, by seeds: each finished seed's result is kept in
OUT/seed-K.json, and the same command run again (or with more seeds) keeps
those and trains the rest, so five 27-minute seeds may span sittings. A
seed stopped midway starts over; its workdir is kept aside as
OUT/seed-K.stopped (nothing is deleted). The seeds' results must come from
the same bin/main.py arguments; each keeps its own commit, CPU and compile
cache, and the table names every one.

With --parallel=M, M seeds train at once, each pinned to its own 1/M of
the cores (a sweep's seeds, not a time to quote for the whole machine):
each seed's wall time is then its cores', and the table says so. A pinned
run is not bitwise the same as one on all cores (XLA:CPU's reductions
follow its thread count).
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable

import ml_collections

from flaxdil import timing
from flaxdil.cores import environment_pinned_to
from flaxdil.errors import FlaxdilError
from flaxdil.experiments import children, report, shards, stats
from flaxdil.workdir import files, lock


def compile_cache() -> str:
  """What this run's compiles start from: JAX's persistent cache, named by
  $JAX_COMPILATION_CACHE_DIR (warm where it holds entries), or none."""
  directory = os.environ.get('JAX_COMPILATION_CACHE_DIR')
  if not directory:
    return 'none (every seed compiles: cold)'
  held = os.path.isdir(directory) and bool(os.listdir(directory))
  return f'{directory} ({"warm" if held else "cold"} at the start)'


def run_seeds(main_args: list[str], seeds: list[int], out: str,
              cores: list[set[int]] | None = None
              ) -> list[dict | FlaxdilError]:
  """Trains `seeds` at once, each a process in OUT/seed-K (new) timed from
  before its start to its own exit, seed i pinned to cores[i] where given
  (XLA:CPU sizes its thread pool by the cores a process may use). Returns
  each seed's record from its summary.json, or the FlaxdilError that says
  why it has none: the other seeds' records are good all the same."""
  workdirs = [os.path.join(out, f'seed-{seed}') for seed in seeds]
  for workdir in workdirs:
    if os.path.exists(workdir) and os.listdir(workdir):
      raise FlaxdilError(
          f'{workdir} holds a run already: a resumed run is not timed end '
          'to end. Fix: give --out a new directory, or remove that one.')
  os.makedirs(out, exist_ok=True)
  processes, started = [], []
  for i, (seed, workdir) in enumerate(zip(seeds, workdirs)):
    mine = cores[i] if cores else None
    with open(workdir + '.log', 'w') as log:
      started.append(time.monotonic())
      processes.append(subprocess.Popen(
          [sys.executable, '-m', 'flaxdil', *main_args,
           f'--config.seed={seed}', f'--workdir={workdir}'],
          stdout=log, stderr=subprocess.STDOUT,
          # It pins itself as it starts, before JAX (flaxdil.cores).
          env=environment_pinned_to(mine) if mine else None))
  codes, stopped, ended = children.wait(processes)
  outcomes = []
  for seed, workdir, code, start, end in zip(seeds, workdirs, codes, started,
                                             ended):
    if code == 0:  # Finished, even if a SIGTERM came as it did.
      outcomes.append(seed_record(seed, workdir, end - start))
    elif stopped:
      outcomes.append(FlaxdilError(
          f'stopped (SIGTERM) during seed {seed}, and its training with it '
          f'(exit {code}; its output is in {workdir}.log). A stopped seed is '
          'not timed end to end: run the same command again to keep the '
          'finished seeds and start this one over.'))
    else:
      outcomes.append(FlaxdilError(f'seed {seed} failed (exit {code}); its '
                                   f'output is in {workdir}.log.'))
  return outcomes


def seed_record(seed: int, workdir: str, seconds: float) -> dict:
  """A finished seed's record: its summary.json's test accuracy, what it
  logged while training, and its wall time from process start to exit."""
  run = report.load_run(workdir)  # Its config, summary and logged metrics.
  summary, config = run.summary, run.config
  return {'seed': seed, 'test_accuracy': summary['test_accuracy'],
          **training_log(run),
          'wall_seconds': seconds,
          'train_wall_seconds': summary['train_wall_time_sec'],
          'images_seen': summary['final_step'] * config['batch_size'],
          'evaluated_step': summary['best_step'],
          'devices': summary['devices'],
          'cores': summary['cores'],  # As the seed itself saw them.
          'selected_on_validation': bool(config['validation_size'])}


def table(record: dict) -> str:
  """The speedrun's markdown table: per seed its accuracy, wall time, images
  seen, logged median images/s and last training accuracy; then the mean ±
  std, the 95 % interval and the share of seeds at or above the target."""
  lines = ['| seed | test accuracy | wall time | images seen | median '
           'images/s | training accuracy, last log |',
           '|---|---|---|---|---|---|']
  for r in record['seeds']:
    # Seeds kept from before these were recorded have neither.
    rate, fit = r.get('median_images_per_sec'), r.get('final_train_accuracy')
    rate = '—' if rate is None else f'{rate:.0f}'
    fit = '—' if fit is None else f'{100 * fit:.1f} %'
    lines.append(f'| {r["seed"]} | {100 * r["test_accuracy"]:.2f} % | '
                 f'{r["wall_seconds"] / 60:.1f} min | '
                 f'{r["images_seen"]:,} | {rate} | {fit} |')
  accuracy, wall = record['accuracy'], record['wall_seconds']
  spread = (f' ± {100 * accuracy["std"]:.2f}' if accuracy['std'] is not None
            else '')
  interval = (f', 95 % interval {100 * accuracy["ci95"][0]:.2f}–'
              f'{100 * accuracy["ci95"][1]:.2f} %' if accuracy['ci95'] else '')
  lines += ['', f'Mean test accuracy {100 * accuracy["mean"]:.2f}{spread} % '
            f'over {accuracy["n"]} seeds{interval}; mean wall time '
            f'{wall["mean"] / 60:.1f} min.']
  if record['target'] is not None:
    lines.append(against_target([r['test_accuracy'] for r in record['seeds']],
                                record['target']))
  lines += ['', f'Command: `{record["command"]}`; commit '
            f'{record["commit"]}; {record["devices"]}, host '
            f'{record["cpu"]}; compile cache: '
            f'{record["compile_cache"]}; seeds run '
            f'{_distinct(record["seeds"], _how_run)}.']
  return '\n'.join(lines) + '\n'


def seeds_at(accuracies: list[float], target: float) -> int:
  """How many seeds reached the target."""
  return sum(a >= target for a in accuracies)


def against_target(accuracies: list[float], target: float) -> str:
  """How many seeds reached the target, and how far the mean is from it."""
  reached = seeds_at(accuracies, target)
  gap = 100 * (sum(accuracies) / len(accuracies) - target)
  return (f'{reached} of {len(accuracies)} seeds at or above '
          f'{100 * target:.2f} %; the mean is {abs(gap):.2f} points '
          f'{"above" if gap >= 0 else "below"} it.')


def training_log(run: report.RunRecord) -> dict:
  """What the run logged while it trained: the median of its logged
  images/s, the first interval (which compiled) left out, and its training
  accuracy at the last log.

  The median says how fast the host ran, apart from the wall time's data
  read, compile and test: seeds in one table may span hours of a host's
  drift. The last training accuracy against the test's says whether the
  run was short of fitting or of generalising."""
  train = run.train
  rates = [r['images_per_sec'] for r in train[1:]]
  return {'median_images_per_sec': (statistics.median(rates) if rates
                                    else None),
          'final_train_accuracy': train[-1]['accuracy'] if train else None}


def _how_run(result: dict) -> str:
  """How a seed shared the machine: alone, or pinned beside others (its
  wall time is then that of its own cores)."""
  at_once = result.get('at_once', 1)  # Seeds from before --parallel: alone.
  if at_once == 1:
    return 'one at a time'
  return (f'{at_once} at once, each pinned to its own {result["cores"]} '
          f'core{"s" if result["cores"] > 1 else ""}')


def _distinct(results: list[dict], key: str | Callable[[dict], str]) -> str:
  """The seeds' values of `key` (a field, or a function of the seed's
  record), each once, in seed order: one commit, CPU or compile cache
  where the seeds ran in one sitting, else each."""
  value = key if callable(key) else lambda r: r[key]
  return ' / '.join(dict.fromkeys(str(value(r)) for r in results))


def _kept_result(out: str, seed: int, main_args: list[str]) -> dict | None:
  """Seed's result from an earlier sitting in OUT, if it finished one. A
  seed that started and did not finish has its workdir set aside (kept,
  as OUT/seed-K.stopped[-N]) so that it starts over, timed end to end."""
  workdir = os.path.join(out, f'seed-{seed}')
  kept_path = workdir + '.json'
  if os.path.exists(kept_path):
    kept = files.read_json(kept_path, f'seed {seed}\'s result')
    if kept['main_args'] != main_args:
      raise FlaxdilError(
          f'{kept_path} ran other arguments ({" ".join(kept["main_args"])}) '
          f'than these ({" ".join(main_args)}): a table holds one recipe. '
          'Fix: give --out a new directory.')
    return kept
  if os.path.exists(workdir) and os.listdir(workdir):
    with lock.WorkdirLock(workdir):  # Refuses a seed that is still training.
      pass
    aside, n = workdir + '.stopped', 1
    while os.path.exists(aside):
      n += 1
      aside = f'{workdir}.stopped-{n}'
    os.rename(workdir, aside)
    print(f'seed {seed} stopped in an earlier sitting: it starts over (its '
          f'workdir is kept as {aside})', flush=True)
  return None


def run(config: ml_collections.ConfigDict, main_args: list[str],
        seeds: list[int], out: str, target: float | None,
        at_once: int = 1) -> dict:
  """Trains `seeds` of main_args' config in OUT/seed-K, `at_once` at a
  time (each pinned to its own equal slice of the cores where more than
  one), keeping those OUT already holds finished from an earlier sitting,
  then writes OUT/speedrun.json and OUT/speedrun.md over all of them.

  Args:
    config: the config main_args give (for its batch size and name).
    main_args: bin/main.py's arguments, without --workdir or the seed.
    target: a test accuracy in [0, 1] to count seeds against, or None.
    at_once: how many seeds train at once (bin/speedrun.py --parallel).

  Returns:
    The record written to speedrun.json.
  """
  if not seeds or min(seeds) < 0:
    raise FlaxdilError(f'seeds {seeds}: give --seeds >= 1 and '
                       '--first_seed >= 0.')
  if target is not None and not 0 < target <= 1:
    raise FlaxdilError(f'--target={target} is not a test accuracy in (0, 1]. '
                       'Fix: give a fraction, e.g. --target=0.8425.')
  cores = shards.core_slices(at_once) if at_once != 1 else None
  sitting = {'main_args': main_args, 'commit': timing.git_commit(),
             'cpu': timing.cpu_description(), 'compile_cache': compile_cache(),
             'at_once': at_once}
  print(f'{sitting["cpu"]}; compile cache: {sitting["compile_cache"]}',
        flush=True)
  done, pending = {}, []
  for seed in seeds:
    kept = _kept_result(out, seed, main_args)
    if kept is None:
      pending.append(seed)
    else:
      done[seed] = kept
      print(f'seed {seed}: kept from an earlier sitting (commit '
            f'{kept["commit"]})', flush=True)
  # Seeds go in groups of at_once, each on its own slice of the cores; a
  # last, smaller group keeps the same slices, so that every seed of the
  # table ran on as many cores.
  for first in range(0, len(pending), at_once):
    group = pending[first:first + at_once]
    failed = []
    for seed, outcome in zip(group, run_seeds(main_args, group, out, cores)):
      if isinstance(outcome, FlaxdilError):
        failed.append(outcome)
        continue
      done[seed] = r = {**outcome, **sitting}
      files.write_json_atomic(os.path.join(out, f'seed-{seed}.json'), r)
      rate = r.get('median_images_per_sec')
      speed = f', {rate:.0f} images/s median' if rate else ''
      print(f'seed {seed}: test accuracy {100 * r["test_accuracy"]:.2f} % '
            f'in {r["wall_seconds"] / 60:.1f} min ({r["images_seen"]:,} '
            f'images seen{speed})', flush=True)
    if failed:
      raise failed[0]
  results = [done[seed] for seed in seeds]
  accuracies = [r['test_accuracy'] for r in results]
  record = {
      'command': ' '.join(['python bin/speedrun.py'] + sys.argv[1:]),
      'main_args': main_args, 'commit': _distinct(results, 'commit'),
      'cpu': _distinct(results, 'cpu'), 'machine': platform.machine(),
      # What trained (the seeds' own record: this process starts no JAX,
      # so that a GPU's memory is the training's).
      'devices': _distinct(results, 'devices'),
      'compile_cache': _distinct(results, 'compile_cache'),
      'target': target, 'seeds': results,
      'accuracy': stats.describe(accuracies),
      'wall_seconds': stats.describe([r['wall_seconds'] for r in results]),
      'reached': (seeds_at(accuracies, target) if target is not None
                  else None),
      'model': config.model, 'dilation': config.dilation,
  }
  files.write_json_atomic(os.path.join(out, 'speedrun.json'), record)
  text = table(record)
  files.write_text_atomic(os.path.join(out, 'speedrun.md'), text)
  print(text, flush=True)
  return record
