"""Smaller crop padding in the fast recipe, each run against the recipe's
own run of the same seed and length, from this repository's files
(issue 26).

  python results/fast_crop_padding/compare.py

Every run and its reference trained on machine D (2 cores) from the same
training code, so a pair shares the initialisation, the data order and
the arithmetic and differs only in `crop_padding`. The last column is the
training accuracy over the final epoch's logged batches (augmented, the
weights as they trained, not their EMA).
"""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.dirname(RESULTS))
from flaxdil.experiments import stats  # noqa: E402

# fast_candidates/compare.py, loaded by path (every results folder names
# its script compare): its reading of the last epoch's training accuracy,
# and the seeds' test accuracies and paired differences it takes from
# fast_weight_decay's.
_spec = importlib.util.spec_from_file_location(
    'fast_candidates_compare',
    os.path.join(RESULTS, 'fast_candidates', 'compare.py'))
_candidates = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_candidates)
last_epoch_train_accuracy = _candidates.last_epoch_train_accuracy
seeds_in = _candidates.seeds_in

# Folder here: (its length, the reference folders of that length).
RUNS = {
    'pad1_5ep': ('5 epochs, crop_padding 1', ['fast_15min/recipe_5ep']),
    'pad0_5ep': ('5 epochs, crop_padding 0 (the flip alone)',
                 ['fast_15min/recipe_5ep']),
    'pad1_9ep': ('9 epochs, crop_padding 1',
                 ['fast_candidates/crop_padding_2', 'fast_recipe']),
}


def main() -> None:
  for folder, (name, references) in RUNS.items():
    values = seeds_in(f'fast_crop_padding/{folder}')
    if not values:
      continue
    reference = seeds_in(*references)
    print(f'{name}:')
    for seed in sorted(values):
      where = next(r for r in references if os.path.exists(os.path.join(
          RESULTS, r, f'seed-{seed}.summary.json')))
      print(f'  seed {seed}: {100 * values[seed]:.2f} % against '
            f'{100 * reference[seed]:.2f} % (the 2-pixel recipe): '
            f'{100 * (values[seed] - reference[seed]):+.2f}; training '
            f'accuracy over the last epoch '
            f'{100 * last_epoch_train_accuracy(f"fast_crop_padding/{folder}", seed):.1f} '
            f'against {100 * last_epoch_train_accuracy(where, seed):.1f} %')
    if len(values) > 1:
      run = stats.describe(list(values.values()))
      paired = stats.paired_differences(values, reference)
      print(f'  over seeds {sorted(values)}: {100 * run["mean"]:.2f} ± '
            f'{100 * run["std"]:.2f} %, 95 % interval '
            f'[{100 * run["ci95"][0]:.2f}, {100 * run["ci95"][1]:.2f}]; '
            f'paired {100 * paired["mean"]:+.2f} '
            f'[{100 * paired["ci95"][0]:+.2f}, {100 * paired["ci95"][1]:+.2f}]')


def flip_alone_against_one_pixel() -> None:
  """The flip alone against the recipe as it stands (1 pixel), paired."""
  print(_candidates.difference('5 epochs, the flip alone against 1 pixel',
                               seeds_in('fast_crop_padding/pad0_5ep'),
                               seeds_in('fast_crop_padding/pad1_5ep')))


if __name__ == '__main__':
  main()
  flip_alone_against_one_pixel()
