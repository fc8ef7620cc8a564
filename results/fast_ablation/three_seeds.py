"""The fast recipe's ablation over seeds 0, 1 and 2, paired, from the files
of this repository's results folders (issue 26, item 4).

  python results/fast_ablation/three_seeds.py

Seeds 0 and 1 were measured first (this folder's speedruns, and
../fast_ablation_eval/ and ../tta_shift/ for the evaluation-side tricks);
seed 2 by `bin/sweep.py --sweep=fast_ablation` (seed-2/). Each row is the
recipe without one trick, minus the recipe, at each seed; the interval is
Student's 95 % interval of the mean difference
(flaxdil.experiments.stats).
"""

import json
import os

from flaxdil.experiments import stats

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.dirname(HERE)


def accuracy(*path: str) -> float:
  with open(os.path.join(RESULTS, *path)) as f:
    record = json.load(f)
  return record.get('test_accuracy', record.get('accuracy'))


# {row: {seed: test accuracy}}; 'fast' is the recipe's own reading (EMA,
# flip, 2-px shift) of its weights.
ROWS = {
    'fast': {0: accuracy('tta_shift', 'fast_d0_seed-0-shift2.json'),
             1: accuracy('tta_shift', 'fast_d0_seed1_seed-1-shift2.json'),
             2: accuracy('speedrun_fast', 'fast_d0_seed2',
                         'seed-2.summary.json')},
    'without_test_time_shift': {
        0: accuracy('tta_shift', 'fast_d0_seed-0-shift0.json'),
        1: accuracy('tta_shift', 'fast_d0_seed1_seed-1-shift0.json')},
}
for row, seed_files in (('without_ema', 'without_ema'),
                        ('without_test_time_flip', 'without_test_time_flip')):
  ROWS[row] = {
      0: accuracy('fast_ablation_eval', f'fast_d0_seed-0-{seed_files}.json'),
      1: accuracy('fast_ablation_eval',
                  f'fast_d0_seed1_seed-1-{seed_files}.json')}
for row in ('without_label_smoothing', 'without_weight_decay'):
  ROWS[row] = {s: accuracy('fast_ablation', row, f'seed-{s}.summary.json')
               for s in (0, 1)}
for row in ROWS:
  if row != 'fast':
    ROWS[row][2] = accuracy('fast_ablation', 'seed-2', row, 'summary.json')


def percent(x: float) -> str:
  return f'{100 * x:.2f}'


print('| row | seed 0 | seed 1 | seed 2 | mean | trick\'s worth: recipe '
      'minus row, mean [95 % interval] |')
print('|---|---|---|---|---|---|')
for row, values in ROWS.items():
  cells = [percent(values[s]) for s in (0, 1, 2)]
  mean = percent(stats.describe(list(values.values()))['mean'])
  if row == 'fast':
    worth = '—'
  else:
    paired = stats.paired_differences(ROWS['fast'], values)
    low, high = paired['ci95']
    worth = (f'{100 * paired["mean"]:+.2f} [{100 * low:+.2f}, '
             f'{100 * high:+.2f}] ('
             + ', '.join(f'{100 * d:+.2f}' for d in paired['differences'])
             + ')')
  print(f'| {row} | ' + ' | '.join(cells) + f' | {mean} | {worth} |')
