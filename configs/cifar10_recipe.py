"""The paper's network (one δ in all nine modules) with the hour-long recipe.

configs/cifar10.py is the paper's setting with plain Adam; this config keeps
its layout (stride 2 at blocks 2, 4, 6, widths 32…1024, 3.1 M parameters)
and adds what trains it fastest on a 2-core CPU (~500 images/s): AdamW on
the kernels (weight decay 0.05), one warm-up epoch then cosine decay, label
smoothing 0.1, an EMA of the weights, and test-time flips. 36 epochs fill
about an hour.

Arguments, comma-separated: configs/cifar10_recipe.py:dilation=2,num_epochs=10
"""

from flaxdil.config import files
from flaxdil.config.args import apply_arguments


def get_config(arg: str | None = None):
  config = files.load('cifar10.py', relative_to=__file__)
  config.dilation = 0
  config.num_epochs = 36
  config.weight_decay = 0.05
  config.label_smoothing = 0.1
  config.ema_decay = 0.999
  config.test_time_flip = True
  return apply_arguments(config, arg)
