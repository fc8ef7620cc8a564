"""Runs one of the paper's tables as a sweep of trainings, one after another.

  python bin/sweep.py --sweep=table2 --root=workdirs/table2 \
      --set=data_dir=../shared/tensorflow_datasets,num_epochs=10
  python bin/sweep.py --sweep=table1 --root=workdirs/table1 --budget_minutes=20 \
      --set=data_dir=../shared/tensorflow_datasets

  python bin/sweep.py --sweep=table2 --seeds=3 --root=workdirs/table2_seeds \
      --set=data_dir=../shared/tensorflow_datasets,num_epochs=3

Each run trains in ROOT/NAME (with --seeds, ROOT/NAME-seedK); run the same
command again to resume (finished runs are skipped). Then: python
bin/report.py ROOT --out=DIR.
Sweeps: table2 (δ = 0..3, configs/cifar10.py), table1 (the paper's network,
our mixed-δ layout and four baselines, for the same wall-clock budget each).
"""

import os

from absl import app, flags, logging

from flaxdil.errors import exit_on_user_error

# The sweeps' runs name config files of this checkout.
_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), 'configs')

_SWEEP = flags.DEFINE_string('sweep', None, 'table1 or table2.')
_ROOT = flags.DEFINE_string('root', None, 'Directory for the runs\' workdirs.')
_SET = flags.DEFINE_string(
    'set', '', 'FIELD=VALUE,... applied to every run\'s config (tuples as '
    'a:b:c), e.g. data_dir=../shared/tensorflow_datasets,num_epochs=10.')
_BUDGET = flags.DEFINE_float(
    'budget_minutes', None, 'Train each run for this many minutes of this '
    'machine\'s measured speed (fixed as a step count before the run).')
_ONLY = flags.DEFINE_list('only', None, 'Run only these runs of the sweep.')
_SEEDS = flags.DEFINE_integer(
    'seeds', None, 'Train every run at seeds 0..N-1, each in ROOT/NAME-seedK '
    '(all runs at one seed before the next).')


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  from flaxdil.experiments import sweep  # Imports JAX: after flags.
  with exit_on_user_error():
    workdirs = sweep.run_sweep(_SWEEP.value, _ROOT.value, _CONFIGS, _SET.value,
                               _BUDGET.value, _ONLY.value, _SEEDS.value)
  print(f'Sweep {_SWEEP.value} done: {len(workdirs)} runs in {_ROOT.value}. '
        f'Report: python bin/report.py {_ROOT.value} --out=DIR')


if __name__ == '__main__':
  flags.mark_flags_as_required(['sweep', 'root'])
  app.run(main)
