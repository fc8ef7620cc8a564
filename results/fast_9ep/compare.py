"""The fast recipe at 9 epochs (449,280 images) against 8 (399,360), and
its evaluation-side tricks taken out, from this repository's files
(issue 26).

  python results/fast_9ep/compare.py

Every value is a seed's final test accuracy on the 10,000 test images. The
8-epoch seeds trained on machine C, the 9-epoch ones on machine D, and
XLA:CPU's code differs between them (the losses part in the fourth digit
by step 100 of the same seed), so a difference at one seed shares its
initialisation and data order but not its arithmetic: read it as two
samples, not as an exact pair. The evaluation-side rows are exact pairs:
the same checkpoint read with and without one trick.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'fast_weight_decay'))
from compare import accuracy, described, difference, seeds_in  # noqa: E402

NINE_EPOCHS = seeds_in('fast_9ep')
EIGHT_EPOCHS = seeds_in('fast_weight_decay/wd15_seed0',
                        'fast_weight_decay/wd15_8ep')
WITHOUT = {trick: {seed: accuracy(f'fast_9ep/eval/d_9ep_seed-{seed}-'
                                  f'without_{trick}.json')
                   for seed in NINE_EPOCHS}
           for trick in ('ema', 'test_time_flip', 'test_time_shift')}


def main() -> None:
  print(described('9 epochs (machine D)', NINE_EPOCHS))
  print(described('8 epochs (machine C)', EIGHT_EPOCHS))
  print(difference('9 minus 8 epochs, same seeds, two machines',
                   NINE_EPOCHS, EIGHT_EPOCHS))
  for trick, values in WITHOUT.items():
    print(difference(f'9 epochs without the {trick.replace("_", " ")} '
                     'minus the recipe', values, NINE_EPOCHS))


if __name__ == '__main__':
  main()
