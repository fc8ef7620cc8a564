"""Candidate changes to the fast recipe, each against the recipe's own run
of the same seed and length, from this repository's files (issue 26): at
9 epochs (this folder) and at 5, the 15-minute budget
(../fast_5ep_candidates/).

  python results/fast_candidates/compare.py

Every candidate and its reference trained on machine D (2 cores), from the
same code under flaxdil/ and configs/, so a pair shares the initialisation,
the data order and the arithmetic: it differs only in the one field. The
last column is the training accuracy over the final epoch's logged batches
(augmented, the weights as they trained, not their EMA): how far the run
got in fitting the training set.
"""

import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(RESULTS, 'fast_weight_decay'))
from compare import difference, seeds_in  # noqa: E402

# Each group: the reference folder, what it is, the candidates' folder, and
# for each candidate (a folder there) the field it changes (each a
# --config.FIELD=VALUE of its command).
GROUPS = (
    ('fast_9ep', 'the recipe of 5a1d6c7 at 9 epochs', 'fast_candidates', {
        'label_smoothing_0': 'label_smoothing 0.0 (the reference: 0.2)',
        'learning_rate_4e-3': 'learning_rate 4e-3 (the reference: 2e-3)',
        'crop_padding_2': 'crop_padding 2 (the reference: 4; the recipe since 7453909)',
    }),
    ('fast_crop_padding/pad1_5ep', 'the recipe at 5 epochs, 1-pixel padding',
     'fast_5ep_candidates', {
         'linear_schedule': "lr_schedule 'linear' (the reference: 'cosine')",
         'adam_b2_0.99': 'adam_b2 0.99 (the reference: 0.999)',
     }),
)


def last_epoch_train_accuracy(folder: str, seed: int) -> float:
  """The mean logged training accuracy over the last epoch's records."""
  with open(os.path.join(RESULTS, folder, f'seed-{seed}.metrics.jsonl')) as f:
    train = [r for r in map(json.loads, f) if r.get('split') == 'train']
  last = [r['accuracy'] for r in train if r['epoch'] > train[-1]['epoch'] - 1]
  return sum(last) / len(last)


def main() -> None:
  for reference_folder, what, candidates_folder, candidates in GROUPS:
    reference = seeds_in(reference_folder)
    for seed, value in sorted(reference.items()):
      print(f'the reference ({what}), seed {seed}: {100 * value:.2f} % test, '
            f'{100 * last_epoch_train_accuracy(reference_folder, seed):.1f} % '
            'training accuracy over the last epoch')
    for folder, name in candidates.items():
      path = f'{candidates_folder}/{folder}'
      values = seeds_in(path)
      if not values:
        continue
      train = ', '.join(f'{100 * last_epoch_train_accuracy(path, s):.1f}'
                        for s in sorted(values))
      print(difference(name, values, reference)
            + f'; training accuracy over the last epoch {train} %')

if __name__ == '__main__':
  main()
