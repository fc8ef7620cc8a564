"""Candidate changes to the fast recipe at 9 epochs, each against the
recipe's own 9-epoch run of the same seed, from this repository's files
(issue 26).

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

REFERENCE = 'fast_9ep'
# Folder: the field it changes (each a --config.FIELD=VALUE of its command).
CANDIDATES = {
    'label_smoothing_0': 'label_smoothing 0.0 (the reference: 0.2)',
    'learning_rate_4e-3': 'learning_rate 4e-3 (the reference: 2e-3)',
    'crop_padding_2': 'crop_padding 2 (the reference: 4; the recipe since 7453909)',
}


def last_epoch_train_accuracy(folder: str, seed: int) -> float:
  """The mean logged training accuracy over the last epoch's records."""
  with open(os.path.join(RESULTS, folder, f'seed-{seed}.metrics.jsonl')) as f:
    train = [r for r in map(json.loads, f) if r.get('split') == 'train']
  last = [r['accuracy'] for r in train if r['epoch'] > train[-1]['epoch'] - 1]
  return sum(last) / len(last)


def main() -> None:
  reference = seeds_in(REFERENCE)
  for seed, value in sorted(reference.items()):
    print(f'the reference (the recipe of 5a1d6c7 at 9 epochs), seed {seed}: {100 * value:.2f} % test, '
          f'{100 * last_epoch_train_accuracy(REFERENCE, seed):.1f} % '
          'training accuracy over the last epoch')
  for folder, name in CANDIDATES.items():
    values = seeds_in(f'fast_candidates/{folder}')
    if not values:
      continue
    train = ', '.join(
        f'{100 * last_epoch_train_accuracy(f"fast_candidates/{folder}", s):.1f}'
        for s in sorted(values))
    print(difference(name, values, reference)
          + f'; training accuracy over the last epoch {train} %')


if __name__ == '__main__':
  main()
