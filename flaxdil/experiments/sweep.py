"""Named sweeps that reproduce the paper's tables, run one after another.

Each run trains in ROOT/NAME with `loop.train_and_evaluate`, so a sweep that
is stopped and started again resumes the unfinished run and skips finished
ones (those with a summary.json). Every run's config, data and workdir
record are checked before the first run starts. bin/report.py turns the
workdirs into a table and plots.

With seeds (--seeds=N), every run is trained at seeds 0..N-1, each in
ROOT/NAME-seedK, all runs at seed 0 first, then seed 1, ...: a sweep stopped
early has complete rows. bin/report.py groups the runs that differ only in
seed (mean, spread, paired differences).

Shards (--shard=I/M) spread a sweep over processes or machines that share
ROOT (a SLURM job array, say): shard I first trains the runs whose index
is I modulo M, then any other that is neither finished nor running (its
workdir's lock is held by a live process: the kernel releases it when a
process dies, however it dies). So no run is started twice, and a run
whose shard died is resumed by the next shard that reaches it. On one
machine, `parallel` starts M shards at once, each pinned to its own cores
(XLA:CPU sizes its thread pool by the cores a process may use).

A time budget (minutes per run) is turned into a number of steps once, from
the train step's measured speed on this machine, before the run starts; the
step count is then part of the run's config.json, so a resumed run keeps it.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import ml_collections

from flaxdil.config import files as config_files
from flaxdil.config.args import apply_arguments, with_fields
from flaxdil.errors import ConfigError, FlaxdilError
from flaxdil.workdir import files


@dataclasses.dataclass(frozen=True)
class Run:
  name: str       # The run's workdir under the sweep's root.
  config: str     # A config file of the configs directory, without '.py'.
  arg: str = ''   # Its get_config argument.
  seed: int | None = None  # Set by --seeds; None: the config's own seed.


def with_seeds(runs: list[Run], seeds: int) -> list[Run]:
  """Every run at seeds 0..seeds-1, seed-major, named NAME-seedK."""
  return [dataclasses.replace(run, name=f'{run.name}-seed{seed}', seed=seed)
          for seed in range(seeds) for run in runs]


SWEEPS = {
    # Table 2: the paper's network with one δ in every module.
    'table2': [Run(f'delta{d}', 'cifar10', f'dilation={d}') for d in range(4)],
    # Table 1: the paper's network (and our mixed-δ layout at the same cost)
    # against the baselines, each for the same wall-clock budget.
    'table1': [Run('dilated_net', 'cifar10'),
               Run('dilated_net_mixed', 'cifar10_recipe_mixed')]
              + [Run(m, 'baselines', f'model={m}')
                 for m in ('mobilenet_v1', 'squeezenet', 'googlenet', 'vgg16')],
    # Time to accuracy (issue 26): the fast recipe, each of its tricks taken
    # out one at a time, and each candidate trick added one at a time; run
    # it with --seeds (bin/report.py --reference=fast pairs the rows).
    'fast_ablation': [Run('fast', 'cifar10_fast')] + [
        Run(name, 'cifar10_fast', arg) for name, arg in (
            ('without_ema', 'ema_decay=0.0'),
            ('without_label_smoothing', 'label_smoothing=0.0'),
            ('without_weight_decay', 'weight_decay=0.0'),
            ('without_test_time_flip', 'test_time_flip=False'),
            ('without_test_time_shift', 'test_time_shift=0'),
            ('with_alternating_flip', 'alternating_flip=True'))],
}


def load_config(run: Run, configs_dir: str,
                overrides: str = '') -> ml_collections.ConfigDict:
  """The run's config (CONFIGS_DIR/CONFIG.py:ARG) with `overrides` applied,
  then the run's seed."""
  path = os.path.join(configs_dir, f'{run.config}.py')
  config = config_files.load(f'{path}:{run.arg}' if run.arg else path)
  config = apply_arguments(config, overrides or None)
  return config if run.seed is None else with_fields(config, seed=run.seed)


def _measured_steps(config: ml_collections.ConfigDict,
                    budget_minutes: float) -> dict:
  """Steps that fit the budget at the train step's measured speed."""
  from flaxdil.config import rules
  from flaxdil.experiments import benchmark  # Compiles: only for budgets.
  from flaxdil.training.devices import Devices
  devices = Devices.of()
  timing = benchmark.TrainTiming(config, rules.check_run(config, devices.all),
                                 devices)
  images_per_sec = timing.images_per_sec(runs=3, steps=3)
  steps = int(budget_minutes * 60 * images_per_sec / config.batch_size)
  return {'budget_minutes': budget_minutes,
          'measured_train_images_per_sec': round(images_per_sec, 1),
          'num_train_steps': max(steps, 1)}


def parse_shard(text: str | None) -> tuple[int, int]:
  """'I/M' → (I, M), checked; None → (0, 1): the whole sweep."""
  if not text:
    return 0, 1
  try:
    index, count = (int(part) for part in text.split('/'))
  except ValueError:
    index, count = -1, 0
  if not 0 <= index < count:
    raise ConfigError(f'--shard={text!r} must be I/M with 0 <= I < M, e.g. '
                      '--shard=0/4 (SLURM: --shard=$SLURM_ARRAY_TASK_ID/'
                      '$SLURM_ARRAY_TASK_COUNT).')
  return index, count


def shard_order(count: int, shard: tuple[int, int]) -> list[int]:
  """The order in which a shard tries a sweep's `count` runs: its own
  (index ≡ I mod M), then every other, starting after its own, so that
  idle shards take over the runs of shards that are gone."""
  index, shards = shard
  own = [i for i in range(count) if i % shards == index]
  return own + [i for i in range(count) if i % shards != index]


def run_sweep(name: str, root: str, configs_dir: str, overrides: str = '',
              budget_minutes: float | None = None, only=None,
              seeds: int | None = None,
              shard: tuple[int, int] = (0, 1)) -> list[str]:
  """Trains every run of sweep `name` under root, its configs read from
  configs_dir (the checkout's configs/), at seeds 0..seeds-1 if given;
  with a shard (I, M), its own runs first, then any other left (module
  doc); returns their workdirs."""
  if name not in SWEEPS:
    raise ConfigError(f'unknown sweep {name!r}; known: {", ".join(SWEEPS)}.')
  runs = [r for r in SWEEPS[name] if not only or r.name in only]
  if only and len(runs) != len(set(only)):
    raise ConfigError(f'--only names runs not in sweep {name!r}: known runs '
                      f'are {", ".join(r.name for r in SWEEPS[name])}.')
  if seeds is not None:
    if seeds < 1:
      raise ConfigError(f'--seeds={seeds}: give a number of seeds >= 1.')
    if any(item.strip().startswith('seed=')
           for item in overrides.split(',')):
      raise ConfigError('--seeds sets every run\'s seed: drop seed= from '
                        '--set.')
    runs = with_seeds(runs, seeds)
  configs = [load_config(run, configs_dir, overrides) for run in runs]
  workdirs = [os.path.join(root, run.name) for run in runs]
  _check_every_run(name, runs, configs, workdirs)
  from flaxdil.training import loop  # Imports JAX.
  from flaxdil.workdir.lock import WorkdirInUse
  for i in shard_order(len(runs), shard):
    run, config, workdir = runs[i], configs[i], workdirs[i]
    if os.path.exists(os.path.join(workdir, 'summary.json')):
      print(f'[{name}] {run.name}: finished earlier, skipped.', flush=True)
      continue
    if budget_minutes:
      config = _apply_budget(config, workdir, budget_minutes)
    print(f'[{name}] {run.name}: configs/{run.config}.py'
          f'{":" + run.arg if run.arg else ""} in {workdir}', flush=True)
    try:
      loop.train_and_evaluate(config, workdir)
    except WorkdirInUse:
      print(f'[{name}] {run.name}: running elsewhere, skipped.', flush=True)
  return workdirs


# The cores a shard started by `parallel` is pinned to, which it applies to
# itself before it imports JAX (pin_to_given_cores), so that XLA sizes its
# thread pool to them.
CORES = 'FLAXDIL_SWEEP_CORES'


def pin_to_given_cores() -> None:
  cores = os.environ.get(CORES)
  if cores:
    os.sched_setaffinity(0, {int(c) for c in cores.split(',')})


def parallel(argv: list[str], count: int, log_dir: str) -> list[int]:
  """Runs bin/sweep.py's command `argv` (without --parallel) as `count`
  shards at once on this machine, shard k pinned to the k-th of `count`
  equal slices of the cores, its output in LOG_DIR/shard-k.log; returns
  their exit codes."""
  cores = sorted(os.sched_getaffinity(0))
  if not 1 <= count <= len(cores):
    raise ConfigError(f'--parallel={count}: this machine lets the sweep use '
                      f'{len(cores)} cores; give 1 to {len(cores)}.')
  os.makedirs(log_dir, exist_ok=True)
  children = []
  for k in range(count):
    mine = set(cores[k * len(cores) // count:(k + 1) * len(cores) // count])
    log = open(os.path.join(log_dir, f'shard-{k}.log'), 'a')
    children.append(subprocess.Popen(
        [sys.executable, *argv, f'--shard={k}/{count}'], stdout=log,
        stderr=subprocess.STDOUT,
        env=dict(os.environ, **{CORES: ','.join(map(str, sorted(mine)))})))
    log.close()
  return [child.wait() for child in children]


def _check_every_run(name: str, runs, configs, workdirs) -> None:
  """What would refuse a run, for every run before the first starts (a bad
  value is found now, not hours in): first what needs no data (the config,
  its devices, the dataset's metadata, the model on its images), then the
  splits and what each workdir already records."""
  from flaxdil.config import rules  # Imports JAX and the model registry.
  from flaxdil.workdir import record

  def each(check):
    for run, config, workdir in zip(runs, configs, workdirs):
      try:
        check(config, workdir)
      except FlaxdilError as e:
        raise type(e)(f'sweep {name}, run {run.name}: {e}') from None

  each(lambda config, workdir: rules.check_run(config))
  each(lambda config, workdir: (
      rules.check_splits(config, rules.training_splits(config)),
      record.check_resume(config, workdir)))


def _apply_budget(config, workdir: str, budget_minutes: float):
  """Fixes num_train_steps from the budget: measured once, then read back."""
  path = os.path.join(workdir, 'budget.json')
  budget = files.read_json(path, 'the step count of the run\'s time budget')
  if budget is None:
    budget = _measured_steps(config, budget_minutes)
    os.makedirs(workdir, exist_ok=True)
    files.write_json_atomic(path, budget)
  print(f'  budget {budget_minutes} min: {budget["num_train_steps"]} steps at '
        f'{budget["measured_train_images_per_sec"]} img/s measured', flush=True)
  return with_fields(config, num_train_steps=budget['num_train_steps'])
