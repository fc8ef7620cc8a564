"""Weight decay 0.05 / 0.5 / 1.5 in the 8-epoch fast recipe, paired by seed,
from the files of this repository's results folders (issue 26).

  python results/fast_weight_decay/compare.py

Each value is a seed's final test accuracy, read the recipe's way (EMA,
test-time flip, 2-px shift); a difference is one decay minus another at
the same seed (same data order and initialisation); the interval is
Student's 95 % interval of the mean (flaxdil.experiments.stats).
"""

import glob
import json
import os
import re

from flaxdil.experiments import stats

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.dirname(HERE)


def accuracy(path: str) -> float:
  """The test accuracy a run's summary.json or an eval's JSON records."""
  with open(os.path.join(RESULTS, path)) as f:
    record = json.load(f)
  return record.get('test_accuracy', record.get('accuracy'))


def seeds_in(*folders: str) -> dict:
  """{seed: test accuracy} of every seed-K.summary.json in the folders."""
  found = {}
  for folder in folders:
    for path in glob.glob(os.path.join(RESULTS, folder,
                                       'seed-*.summary.json')):
      seed = int(re.search(r'seed-(\d+)', os.path.basename(path)).group(1))
      found[seed] = accuracy(path)
  return found


ROWS = {
    # The recipe before c137b1b (results/speedrun_fast/ and the 2-px
    # shift's reading of seeds 0 and 1 in results/tta_shift/).
    '0.05': {**seeds_in('speedrun_fast/fast_d0_seed2'),
             0: accuracy('tta_shift/fast_d0_seed-0-shift2.json'),
             1: accuracy('tta_shift/fast_d0_seed1_seed-1-shift2.json')},
    '0.5': seeds_in('fast_weight_decay/wd05', 'fast_weight_decay/wd05_seed1',
                    'fast_weight_decay/wd05_seed2'),
    '1.5': seeds_in('fast_weight_decay/wd15_seed0',
                    'fast_weight_decay/wd15_8ep'),
}


def percent(value: float) -> str:
  return f'{100 * value:.2f}'


def described(name: str, values: dict) -> str:
  """NAME: the mean, spread and 95 % interval of {seed: accuracy}, and
  each seed's value."""
  d = stats.describe(list(values.values()))
  spread = (f' ± {percent(d["std"])}, 95 % interval '
            f'[{percent(d["ci95"][0])}, {percent(d["ci95"][1])}]'
            if d['std'] is not None else '')
  each = ', '.join(f'{s}: {percent(v)}' for s, v in sorted(values.items()))
  return f'{name}: {percent(d["mean"])} %{spread} over {d["n"]} seeds ({each})'


def difference(name: str, values: dict, reference: dict) -> str:
  """NAME: `values` minus `reference` at the seeds both have, its 95 %
  interval and each seed's difference."""
  paired = stats.paired_differences(values, reference)
  interval = paired['ci95']
  shown = (f'[{100 * interval[0]:+.2f}, {100 * interval[1]:+.2f}]'
           if interval else '(one seed)')
  each = ', '.join(f'{100 * d:+.2f}' for d in paired['differences'])
  return (f'{name}, seeds {paired["seeds"]}: '
          f'{100 * paired["mean"]:+.2f} points {shown} ({each})')


def main() -> None:
  for name, values in ROWS.items():
    print(described(f'weight decay {name}', values))
  for new, old in (('0.5', '0.05'), ('1.5', '0.5'), ('1.5', '0.05')):
    print(difference(f'{new} minus {old}', ROWS[new], ROWS[old]))

if __name__ == '__main__':
  main()
