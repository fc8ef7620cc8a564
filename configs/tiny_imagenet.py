"""The paper's network on Tiny ImageNet (Table 3): 200 classes, 64×64.

Prepared on first use from the official zip in config.manual_dir into
config.data_dir (flaxdil/tiny_imagenet.py), e.g.

  python bin/main.py --config=configs/tiny_imagenet.py \
      --config.manual_dir=../shared/data/tiny_imagenet \
      --config.data_dir=workdirs/tensorflow_datasets --workdir=DIR

The validation split (labels from val_annotations.txt) is the test split of
our reports, as in the paper; model selection holds examples out of train.
Arguments, comma-separated: configs/tiny_imagenet.py:dilation=1
"""

from flaxdil.config import defaults
from flaxdil.config.args import apply_arguments


def get_config(arg: str | None = None):
  config = defaults.get_config()
  config.dataset = 'tiny_imagenet'
  config.manual_dir = '../shared/data/tiny_imagenet'
  config.test_split = 'validation'
  config.validation_size = 1000
  config.crop_padding = 8
  config.dilation = 2
  # One more stride-2 than on CIFAR-10 (64 → 4 pixels); the same widths.
  config.strides = (1, 2, 1, 2, 1, 2, 1, 2, 1)
  config.num_epochs = 30
  return apply_arguments(config, arg)
