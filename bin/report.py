"""Training workdirs → a markdown table and PNG plots.

  python bin/report.py workdirs/table2 --out=results/table2
  python bin/report.py workdirs/run_a workdirs/run_b --out=DIR

Each argument is a workdir or a directory of workdirs (a sweep's root).
Writes OUT/table.md (per run, and over seeds where runs differ only in
seed: n, mean, std, 95 % interval, paired difference to --reference, also
in OUT/seeds.json) and the plots the runs support: curves.png (validation
accuracy against epoch and minutes), accuracy_vs_dilation.png (runs that
differ in δ, with 95 % intervals over seeds), accuracy_vs_params.png and
accuracy_vs_time.png (runs of different models).
"""

import os

from absl import app, flags

from flaxdil.errors import exit_on_user_error

_OUT = flags.DEFINE_string('out', None, 'Directory for table.md and the PNGs.')
_REFERENCE = flags.DEFINE_string(
    'reference', None, 'Runs over seeds: the group that paired differences '
    'are taken to (default: the paper\'s network with δ = 0, if present).')


def main(argv) -> None:
  if len(argv) < 2:
    raise app.UsageError('give at least one workdir or sweep root')
  from flaxdil.experiments import report
  with exit_on_user_error():
    result = report.write_report(argv[1:], _OUT.value, _REFERENCE.value)
  print(result['table'])
  print('Wrote', ', '.join([os.path.join(_OUT.value, 'table.md')] + result['plots']))


if __name__ == '__main__':
  flags.mark_flag_as_required('out')
  app.run(main)
