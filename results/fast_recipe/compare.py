"""The fast recipe as it is now (configs/cifar10_fast.py since 7453909: 9
epochs, crops after 2-pixel padding, weight decay 1.5) over every seed run
of it, from this repository's files (issue 26).

  python results/fast_recipe/compare.py

Seeds 0 and 1 ran as the candidate `crop_padding=2` on top of the recipe
at 9 epochs (../fast_candidates/crop_padding_2/: the same config, field
for field); the others as the recipe itself (this folder). All on
machine D. Each value is a seed's final test accuracy, read the recipe's
way (EMA, test-time flip, 2-px shift), measured once.
"""

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'fast_weight_decay'))
from compare import described, seeds_in  # noqa: E402

from flaxdil.experiments import speedrun  # noqa: E402

TARGET = 0.8425
SEEDS = seeds_in('fast_candidates/crop_padding_2', 'fast_recipe')


def main() -> None:
  print(described('the fast recipe (9 epochs, 2-pixel padding)', SEEDS))
  print(speedrun.against_target(list(SEEDS.values()), TARGET))


if __name__ == '__main__':
  main()
