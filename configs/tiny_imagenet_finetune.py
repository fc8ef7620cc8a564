"""Fine-tuning on Tiny ImageNet from the released CIFAR-10 weights
(config.init_from), against the same run from scratch (init_from='').

The network is the released one's (configs/cifar10_fast.py, δ = 0: 3.1 M
parameters, stride 2 at blocks 2, 4, 6), given Tiny ImageNet's 64×64
images resized to the 32×32 it was trained on (config.image_size: the
network's first operation); its classifier is re-initialised for 200
classes. The recipe is the fast one: AdamW, label smoothing, an EMA,
test-time flips, no hold-out (nothing is selected), the final weights
tested once on the 10,000 validation images.

  python bin/main.py --config=configs/tiny_imagenet_finetune.py \
      --config.data_dir=workdirs/tensorflow_datasets --workdir=DIR
  ... --config=configs/tiny_imagenet_finetune.py:init_from=   (from scratch)
  ... --config.freeze_backbone=True                           (linear probe)

Tiny ImageNet is prepared on first use from the zip in config.manual_dir
(configs/tiny_imagenet.py says how).
"""

from flaxdil.config import files
from flaxdil.config.args import apply_arguments


def get_config(arg: str | None = None):
  config = files.load('cifar10_fast.py', relative_to=__file__)
  tiny = files.load('tiny_imagenet.py', relative_to=__file__)
  for field in ('dataset', 'manual_dir', 'test_split'):
    config[field] = tiny[field]
  config.image_size = 32
  config.init_from = 'dilated_net_d0_fast'
  config.num_epochs = 10
  return apply_arguments(config, arg)
