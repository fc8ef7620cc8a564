"""Runs one of the paper's tables as a sweep of trainings, one after another.

  python bin/sweep.py --sweep=table2 --root=workdirs/table2 \
      --set=data_dir=../shared/tensorflow_datasets,num_epochs=10
  python bin/sweep.py --sweep=table1 --root=workdirs/table1 --budget_minutes=20 \
      --set=data_dir=../shared/tensorflow_datasets

  python bin/sweep.py --sweep=table2 --seeds=3 --root=workdirs/table2_seeds \
      --set=data_dir=../shared/tensorflow_datasets,num_epochs=3

  python bin/sweep.py --sweep=table2 --seeds=3 --root=workdirs/t2 --parallel=2 ...
  sbatch --array=0-7 --wrap="python bin/sweep.py --sweep=table2 --seeds=3 \
      --root=/shared/t2 --shard=\$SLURM_ARRAY_TASK_ID/8 ..."

Each run trains in ROOT/NAME (with --seeds, ROOT/NAME-seedK); run the same
command again to resume (finished runs are skipped). --shard=I/M trains
shard I's runs first, then any other that is neither finished nor running
(a run is never started twice; a dead shard's run is resumed by the next
shard that reaches it); --parallel=M runs M shards here at once, each on its
own cores, their output in ROOT/shards/. Then: python bin/report.py ROOT
--out=DIR.
Sweeps: table2 (δ = 0..3, configs/cifar10.py), table1 (the paper's network,
our mixed-δ layout and four baselines, for the same wall-clock budget each),
fast_ablation (configs/cifar10_fast.py with each trick taken out; the
evaluation-side ones test the recipe's own weights, training nothing).
"""

import os
import sys

from absl import app, flags, logging

from flaxdil import cores
from flaxdil.errors import exit_on_user_error

# The sweeps' runs name config files of this checkout.
_CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))), 'configs')

_SWEEP = flags.DEFINE_string('sweep', None, 'table1, table2 or fast_ablation.')
_ROOT = flags.DEFINE_string('root', None, 'Directory for the runs\' workdirs.')
_SET = flags.DEFINE_string(
    'set', '', 'FIELD=VALUE,... applied to every run\'s config (tuples as '
    'a:b:c), e.g. data_dir=../shared/tensorflow_datasets,num_epochs=10.')
_BUDGET = flags.DEFINE_float(
    'budget_minutes', None, 'Train each run for this many minutes of this '
    'machine\'s measured speed (fixed as a step count before the run).')
_ONLY = flags.DEFINE_list('only', None, 'Run only these runs of the sweep.')
_SHARD = flags.DEFINE_string(
    'shard', None, 'I/M: this process is shard I of M (its runs first, then '
    'any left; ROOT shared by all).')
_PARALLEL = flags.DEFINE_integer(
    'parallel', None, 'Run M shards at once on this machine, each pinned to '
    'its own cores.')
_SEEDS = flags.DEFINE_integer(
    'seeds', None, 'Train every run at seeds 0..N-1, each in ROOT/NAME-seedK '
    '(all runs at one seed before the next).')


def main(argv) -> None:
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  with exit_on_user_error():
    cores.pin_from_environment()  # A shard of --parallel: before JAX starts.
    from flaxdil.experiments import shards, sweep
    if _PARALLEL.value:
      if _SHARD.value:
        raise app.UsageError('--parallel starts its own shards: drop --shard.')
      argv = [a for a in sys.argv if not a.startswith('--parallel')]
      codes = shards.parallel(argv, _PARALLEL.value,
                              os.path.join(_ROOT.value, 'shards'))
      if any(codes):
        print(f'Shards exited with {codes}: see {_ROOT.value}/shards/. Run '
              'the same command again to resume.', file=sys.stderr)
        sys.exit(max(codes))
      workdirs = []
    else:
      workdirs = sweep.run_sweep(
          _SWEEP.value, _ROOT.value, _CONFIGS, _SET.value, _BUDGET.value,
          _ONLY.value, _SEEDS.value, shards.parse_shard(_SHARD.value))
  print(f'Sweep {_SWEEP.value} done: {len(workdirs) or "all"} runs in '
        f'{_ROOT.value}. '
        f'Report: python bin/report.py {_ROOT.value} --out=DIR')


if __name__ == '__main__':
  flags.mark_flags_as_required(['sweep', 'root'])
  app.run(main)
