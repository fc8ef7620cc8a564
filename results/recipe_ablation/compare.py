"""The fast recipe (configs/cifar10_fast.py) with each of its tricks taken
out, one at a time, paired by seed, from this repository's files (issue
26, item 4), one table per recipe the tricks were taken out of.

The recipe as it stands (7 epochs, crops after 1-pixel padding:
../fast_7ep/recipe_pad1/): its crops taken out (the flip alone,
crop_padding_0/) and its evaluation-side tricks on its own five
checkpoints (eval_7ep/).

The same recipe on machine E (../fast_7ep/recipe_pad1_machine_e/): the
rows trained there (machine_e/), paired with its own seeds of the recipe
because two kinds of machine do not compute the same bits: the random
flip taken out (the crops alone), label smoothing taken out and weight
decay taken out. A row prints once its folder holds seeds.

The same at 9 epochs (../fast_crop_padding/pad1_9ep/, the config from
635e405 until 1de9574). Its first row pairs it with the same at 2
pixels, the recipe from 7453909 until then; the other training-side rows
take their trick out of that 2-pixel recipe, as it was when they were
measured; the evaluation-side rows read the recipe's own checkpoints
(eval_pad1/; eval/ holds the same readings of the 2-pixel recipe's).

  python results/recipe_ablation/compare.py

Every run of a table trained on one machine (D, or E for its own table;
2 cores, the whole machine), from the same training code under flaxdil/
and configs/: a pair shares the initialisation, the data order and the
arithmetic, and differs only in the one field. The 2-pixel recipe's seeds
are ../fast_candidates/crop_padding_2/ (0, 1) and ../fast_recipe/ (2, 3,
4).

Training-side rows are their own runs (bin/speedrun.py with one
--config.FIELD=VALUE; the 4-pixel padding's seeds 0 and 1 are
../fast_9ep/'s). Evaluation-side rows read the recipe's own checkpoints
without one trick (../fast_ablation_eval/evaluate.py): exact pairs,
training nothing. A trick's worth is the recipe minus the row, Student's
95 % interval of the mean difference (flaxdil.experiments.stats); its cost
is the recipe's time minus the row's, paired: the run's wall time from
start to printed test accuracy (summary.json) for a training-side trick,
the test evaluation's seconds for an evaluation-side one.
"""

import glob
import json
import os
import re
from typing import NamedTuple

from flaxdil.experiments import stats

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.dirname(HERE)
# The recipe as it stands: 7 epochs, crops after 1-pixel padding.
RECIPE_7EP = ('fast_7ep/recipe_pad1',)
# The same config on machine E (2-core Xeon, family 6 model 207): its own
# seeds, so that the rows trained there pair with runs of its arithmetic.
RECIPE_7EP_E = ('fast_7ep/recipe_pad1_machine_e',)
# The recipe at 9 epochs with 1-pixel padding (635e405 until 1de9574) and
# with 2-pixel padding (7453909 until 635e405).
RECIPE_PAD1 = ('fast_crop_padding/pad1_9ep',)
RECIPE = ('fast_candidates/crop_padding_2', 'fast_recipe')


class Ablation(NamedTuple):
  """One recipe's tricks taken out. training: {name: (the trick, how the
  row runs without it, its folders, the folders of the recipe it is paired
  with)}; readings: the folder of the recipe's checkpoints read without
  each evaluation-side trick (None: not read)."""
  title: str
  recipe: tuple[str, ...]
  training: dict
  readings: str | None


ABLATIONS = (
    Ablation('the recipe (7 epochs, 1-pixel padding)', RECIPE_7EP, {
        'crop_padding_0': ('the crops (after 1-pixel padding): the flip '
                           'alone', 'crop_padding=0',
                           ('recipe_ablation/crop_padding_0',), RECIPE_7EP),
    }, 'eval_7ep'),
    Ablation('the same recipe on machine E', RECIPE_7EP_E, {
        'random_flip_False': ('the random flip: the crops alone',
                              'random_flip=False',
                              ('recipe_ablation/machine_e/random_flip_False',),
                              RECIPE_7EP_E),
        'label_smoothing_0': ('label smoothing 0.2', 'label_smoothing=0.0',
                              ('recipe_ablation/machine_e/label_smoothing_0',),
                              RECIPE_7EP_E),
        'weight_decay_0': ('weight decay 1.5 (AdamW)', 'weight_decay=0.0',
                           ('recipe_ablation/machine_e/weight_decay_0',),
                           RECIPE_7EP_E),
    }, None),
    Ablation('the recipe at 9 epochs (1-pixel padding)', RECIPE_PAD1, {
        'crop_padding_2': ('crops after 1-pixel padding (instead of 2)',
                           'crop_padding=2', RECIPE, RECIPE_PAD1),
        'crop_padding_4': ('crops after 2-pixel padding', 'crop_padding=4',
                           ('fast_9ep', 'recipe_ablation/crop_padding_4'),
                           RECIPE),
        'label_smoothing_0': ('label smoothing 0.2', 'label_smoothing=0.0',
                              ('recipe_ablation/label_smoothing_0',), RECIPE),
        'weight_decay_0': ('weight decay 1.5 (AdamW)', 'weight_decay=0.0',
                           ('recipe_ablation/weight_decay_0',), RECIPE),
    }, 'eval_pad1'),
)

EVALUATION_ROWS = {
    'without_ema': ('the EMA of the weights (0.99)', 'ema_decay=0'),
    'without_test_time_flip': ('the test-time flip', 'test_time_flip=False'),
    'without_test_time_shift': ('the 2-px test-time shift',
                                'test_time_shift=0'),
}


def _read(path: str) -> dict:
  with open(path) as f:
    return json.load(f)


def _seed(path: str) -> int:
  return int(re.search(r'seed-(\d+)', os.path.basename(path)).group(1))


def runs_in(*folders: str) -> dict:
  """{seed: (test accuracy, wall seconds)} of every seed-K.summary.json."""
  found = {}
  for folder in folders:
    for path in glob.glob(os.path.join(RESULTS, folder,
                                       'seed-*.summary.json')):
      summary = _read(path)
      found[_seed(path)] = (summary['test_accuracy'],
                            summary['wall_time_sec'])
  return found


def readings(folder: str, variant: str) -> dict:
  """{seed: (test accuracy, evaluation seconds)} of FOLDER/seed-K-VARIANT."""
  found = {}
  for path in glob.glob(os.path.join(HERE, folder,
                                     f'seed-*-{variant}.json')):
    record = _read(path)
    found[_seed(path)] = (record['accuracy'], record['eval_seconds'])
  return found


def worth_and_cost(reference: dict, row: dict) -> tuple[dict, dict]:
  """The paired accuracy difference (reference minus row) and the paired
  time difference, at the seeds both have."""
  pick = lambda runs, i: {s: v[i] for s, v in runs.items()}  # noqa: E731
  return (stats.paired_differences(pick(reference, 0), pick(row, 0)),
          stats.paired_differences(pick(reference, 1), pick(row, 1)))


def signed(value: float, digits: int = 2) -> str:
  """VALUE with its sign, the minus as the documents print it (U+2212),
  so that a table pastes into them as it is."""
  return f'{value:+.{digits}f}'.replace('-', '\u2212')


def points(paired: dict) -> str:
  interval = paired['ci95']
  shown = (f' [{signed(100 * interval[0])}, {signed(100 * interval[1])}]'
           if interval else ' (one seed)')
  each = ', '.join(signed(100 * d) for d in paired['differences'])
  return f'**{signed(100 * paired["mean"])}**{shown} ({each})'


def table(ablation: Ablation) -> list[str]:
  lines = ['| trick taken out | the row runs with | seeds | row\'s test '
           'accuracy | the trick\'s worth: recipe minus row, points, mean '
           '[95 % interval] (each seed) | its cost: recipe minus row |',
           '|---|---|---|---|---|---|']
  rows = [(row, runs_in(*row[3]), runs_in(*row[2]), 'min of wall time', 60)
          for row in ablation.training.values()]
  if ablation.readings:
    recipe_reading = readings(ablation.readings, 'recipe')
    rows += [(EVALUATION_ROWS[name], recipe_reading,
              readings(ablation.readings, name),
              's of test evaluation', 1) for name in EVALUATION_ROWS]
  for (trick, field, *_), reference, row, unit, scale in rows:
    if not row:
      continue
    worth, cost = worth_and_cost(reference, row)
    accuracies = ', '.join(f'{100 * row[s][0]:.2f}' for s in sorted(row))
    seeds = ', '.join(map(str, worth['seeds']))
    lines.append(f'| {trick} | `{field}` | {seeds} '
                 f'| {accuracies} % | {points(worth)} '
                 f'| {signed(cost["mean"] / scale, 1)} {unit} |')
  return lines


def main() -> None:
  recipes = [(a.title, a.recipe) for a in ABLATIONS]
  for name, folders in recipes + [('the 2-pixel recipe (9 epochs)', RECIPE)]:
    runs = runs_in(*folders)
    if not runs:
      print(f'{name}: no seeds recorded yet')
      continue
    described = stats.describe([v[0] for v in runs.values()])
    print(f'{name}: {100 * described["mean"]:.2f} % over seeds '
          f'{sorted(runs)}')
  for ablation in ABLATIONS:
    print(f'\n{ablation.title}, each trick taken out:')
    print('\n'.join(table(ablation)))


if __name__ == '__main__':
  main()
