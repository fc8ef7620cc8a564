"""Candidate changes to the recipe at the 5 epochs that fit in 15 minutes
here, each against the recipe's own 5-epoch run of the same seed, from this
repository's files (issue 26).

  python results/fast_5ep_candidates/compare.py

The reference is `../fast_crop_padding/pad1_5ep/` (configs/cifar10_fast.py
cut to 5 epochs, crops after 1-pixel padding). Every candidate and its
reference trained on machine D (2 cores) with the same arithmetic (the
training code between them changed by off-by-default fields, each checked
with bin/bitwise.py), so a pair shares the initialisation, the data order
and the augmentation: it differs only in the one field.
"""

import importlib.util
import os

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.dirname(HERE)

# fast_candidates/compare.py, loaded by path (every results folder names
# its script compare), as ../fast_crop_padding/compare.py does: its reading
# of the last epoch's training accuracy, and fast_weight_decay's seeds and
# paired differences that it imports.
_spec = importlib.util.spec_from_file_location(
    'fast_candidates_compare',
    os.path.join(RESULTS, 'fast_candidates', 'compare.py'))
_candidates = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_candidates)
last_epoch_train_accuracy = _candidates.last_epoch_train_accuracy
seeds_in, difference = _candidates.seeds_in, _candidates.difference

REFERENCE = 'fast_crop_padding/pad1_5ep'
# Folder: the field it changes (each a --config.FIELD=VALUE of its command).
CANDIDATES = {
    'linear_schedule': "lr_schedule 'linear' (the reference: 'cosine')",
    'adam_b2_0.99': 'adam_b2 0.99 (the reference: 0.999)',
}


def main() -> None:
  reference = seeds_in(REFERENCE)
  for seed, value in sorted(reference.items()):
    print(f'the reference, seed {seed}: {100 * value:.2f} % test, '
          f'{100 * last_epoch_train_accuracy(REFERENCE, seed):.1f} % '
          'training accuracy over the last epoch')
  for folder, name in CANDIDATES.items():
    path = f'fast_5ep_candidates/{folder}'
    values = seeds_in(path)
    if not values:
      continue
    train = ', '.join(f'{100 * last_epoch_train_accuracy(path, s):.1f}'
                      for s in sorted(values))
    print(difference(name, values, reference)
          + f'; training accuracy over the last epoch {train} %')


if __name__ == '__main__':
  main()
