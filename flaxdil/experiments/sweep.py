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

Shards (--shard=I/M, flaxdil.experiments.shards) spread a sweep over
processes or machines that share ROOT: a run is skipped while another live
process holds its workdir's lock (the kernel releases it when a process
dies, however it dies), so no run is started twice, and a run whose shard
died is resumed by the next shard that reaches it.

A run that `reads` another trains nothing: it tests the weights that run
(at the same seed) was tested with, read its own way. For a trick that
changes only evaluation (the EMA, which is never fed back, and test-time
augmentation) its own training would repeat the other run's bit for bit,
so this is the same figure at the cost of one evaluation, paired exactly.
It waits (is skipped, for the next start) until that run has finished.

A time budget (minutes per run) is turned into a number of steps once, from
the train step's measured speed on this machine, before the run starts; the
step count is then part of the run's config.json, so a resumed run keeps it.
"""

from __future__ import annotations

import dataclasses
import os
import time

import ml_collections

from flaxdil.config import files as config_files
from flaxdil.config.args import apply_arguments, with_fields
from flaxdil.errors import ConfigError, FlaxdilError
from flaxdil.experiments import shards
from flaxdil.workdir import files


@dataclasses.dataclass(frozen=True)
class Run:
  name: str       # The run's workdir under the sweep's root.
  config: str     # A config file of the configs directory, without '.py'.
  arg: str = ''   # Its get_config argument.
  seed: int | None = None  # Set by --seeds; None: the config's own seed.
  # The run of the same sweep whose final weights this one tests instead of
  # training (module doc); its config may differ only in EVALUATION_FIELDS.
  reads: str | None = None


# What a run may change from the run it reads: nothing that training uses.
# The EMA only to 0 (the raw weights, kept beside it, are what a run without
# one trains).
EVALUATION_FIELDS = ('ema_decay', 'test_time_flip', 'test_time_shift')


def with_seeds(runs: list[Run], seeds: int) -> list[Run]:
  """Every run at seeds 0..seeds-1, seed-major, named NAME-seedK."""
  return [dataclasses.replace(
      run, name=f'{run.name}-seed{seed}', seed=seed,
      reads=run.reads and f'{run.reads}-seed{seed}')
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
    # it with --seeds (bin/report.py --reference=fast pairs the rows). The
    # evaluation-side tricks read the recipe's own weights.
    'fast_ablation': [Run('fast', 'cifar10_fast')] + [
        Run(name, 'cifar10_fast', arg, reads='fast') for name, arg in (
            ('without_ema', 'ema_decay=0.0'),
            ('without_test_time_flip', 'test_time_flip=False'),
            ('without_test_time_shift', 'test_time_shift=0'))] + [
        Run(name, 'cifar10_fast', arg) for name, arg in (
            ('without_label_smoothing', 'label_smoothing=0.0'),
            ('without_weight_decay', 'weight_decay=0.0'),
            # The training-time augmentation, one half at a time: the
            # flip alone (no crops) and the crops alone (no flip).
            ('without_crops', 'crop_padding=0'),
            ('without_random_flip', 'random_flip=False'),
            ('with_alternating_flip', 'alternating_flip=True'),
            # The recipe's weight decay 1.5 against the hour-long
            # recipe's 0.05 and 0.5 (results/fast_weight_decay/).
            ('with_weight_decay_0.05', 'weight_decay=0.05'),
            ('with_weight_decay_0.5', 'weight_decay=0.5'),
            # The recipe's 7 epochs and 1-pixel crop padding against the
            # 9 epochs and the 4 and 2 pixels before (results/fast_7ep/,
            # results/fast_candidates/, results/fast_crop_padding/).
            ('with_9_epochs', 'num_epochs=9'),
            ('with_crop_padding_4', 'crop_padding=4'),
            ('with_crop_padding_2', 'crop_padding=2'))],
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
  every = {r.name: r for r in (SWEEPS[name] if seeds is None
                               else with_seeds(SWEEPS[name], seeds))}
  for run, config in zip(runs, configs):
    if run.reads:
      check_reads(run, config,
                  load_config(every[run.reads], configs_dir, overrides))
  _check_every_run(name, runs, configs, workdirs)
  from flaxdil.training import loop  # Imports JAX.
  from flaxdil.workdir.lock import WorkdirInUse
  for i in shards.shard_order(len(runs), shard):
    run, config, workdir = runs[i], configs[i], workdirs[i]
    if os.path.exists(os.path.join(workdir, 'summary.json')):
      print(f'[{name}] {run.name}: finished earlier, skipped.', flush=True)
      continue
    if run.reads:
      _test_weights_of(os.path.join(root, run.reads), config, workdir,
                       f'[{name}] {run.name}')
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


def check_reads(run: Run, config: ml_collections.ConfigDict,
                read: ml_collections.ConfigDict) -> None:
  """Refuses a run that reads another's weights (Run.reads) but differs
  from its config, `read`, in what training uses."""
  trained = [k for k in config if config[k] != read[k]
             and (k not in EVALUATION_FIELDS
                  or k == 'ema_decay' and (config[k] or not read[k]))]
  if trained:
    raise ConfigError(
        f'run {run.name} tests the weights of run {run.reads} but changes '
        'what its training did (' + '; '.join(
            f'{k}: {read[k]!r} there, {config[k]!r} here' for k in trained)
        + f'). Fix: change only {", ".join(EVALUATION_FIELDS)} (ema_decay '
        'only to 0), or train the run itself (drop reads).')


def _test_weights_of(trained: str, config: ml_collections.ConfigDict,
                     workdir: str, label: str) -> None:
  """Tests the weights the run in `trained` was tested with, read as
  `config` says, on the whole test split; writes WORKDIR/config.json and
  then summary.json: the trained run's, with this test's figures and
  'reads' naming that workdir."""
  summary = files.read_json(os.path.join(trained, 'summary.json'),
                            'the final summary of the run it reads')
  if summary is None:
    print(f'{label}: reads {trained}, which has not finished training; '
          'skipped (run the sweep again once it has).', flush=True)
    return
  from flaxdil.training import evaluation
  from flaxdil.workdir import record
  from flaxdil.workdir.lock import WorkdirInUse, lock_for_run
  try:
    lock = lock_for_run(workdir)
  except WorkdirInUse:
    print(f'{label}: running elsewhere, skipped.', flush=True)
    return
  try:
    print(f'{label}: tests the weights of {trained}', flush=True)
    start = time.monotonic()
    test = evaluation.retest(config, trained, summary['best_step'], workdir)
    seconds = time.monotonic() - start
    record.start_session(config, workdir, {}, reads=trained)
    files.write_json_atomic(os.path.join(workdir, 'summary.json'), dict(
        summary, reads=trained, test_accuracy=test['accuracy'],
        test_loss=test['loss'], evaluation_wall_time_sec=seconds,
        wall_time_sec=summary['train_wall_time_sec'] + seconds))
    print(f'{label}: test accuracy {test["accuracy"]:.4f} (the weights of '
          f'step {test["step"]}).', flush=True)
  finally:
    lock.release()


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
