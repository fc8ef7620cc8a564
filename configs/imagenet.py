"""ImageNet (TFDS imagenet2012) at 224×224: the paper's network, or Table 1's
"1.0 MobileNet 224" with configs/imagenet.py:model=mobilenet_v1,stem=imagenet.

TFDS prepares imagenet2012 once, into config.data_dir, from the official
ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar, which must be
downloaded by hand (image-net.org) into config.manual_dir (docs/data.md):

  python bin/main.py --config=configs/imagenet.py \
      --config.manual_dir=/data/imagenet/downloads \
      --config.data_dir=/data/tensorflow_datasets --workdir=DIR

Its images vary in size, so the stream input pipeline reads each step's rows
on the host: a random resized crop to 224 for training, the shorter side
resized to 256 and the centre 224 for evaluation; the flip and the
normalisation run on the device. The validation split is the test split of
reports, as for Tiny ImageNet; model selection holds 10,000 training images
out. The recipe (AdamW, 90 epochs, label smoothing) is a starting point:
flaxdil has not trained ImageNet (no copy is reachable here).

As `--mode=inspect` counts them, the paper's network here has 4,123,907
parameters (1,025,000 of them in the 1000-class head) and 428.2 M
multiply-adds per 224×224 image; 1.0 MobileNet 224 has 4,231,976 and
568.7 M. Arguments, comma-separated: configs/imagenet.py:dilation=0
"""

from flaxdil.config import defaults
from flaxdil.config.args import apply_arguments


def get_config(arg: str | None = None):
  config = defaults.get_config()
  config.dataset = 'imagenet2012'
  config.image_size = 224
  config.test_split = 'validation'
  config.validation_size = 10000
  config.crop_padding = 0          # The host's random resized crop instead.
  config.dilation = 2
  # Five stride-2 structures (224 → 7 pixels), as MobileNet downsamples 32×.
  config.strides = (2, 2, 1, 2, 1, 2, 1, 2, 1)
  config.batch_size = 256
  config.eval_batch_size = 500
  config.num_epochs = 90
  config.warmup_epochs = 5.0
  config.weight_decay = 0.05
  config.label_smoothing = 0.1
  config.log_every_steps = 100
  config.checkpoint_every_minutes = 30.0
  return apply_arguments(config, arg)
