"""The paper's network on CIFAR-10: δ = 2 in all nine modules, Adam.

Arguments, comma-separated: configs/cifar10.py:dilation=0,num_epochs=10
"""

from flaxdil.config import defaults
from flaxdil.config.args import apply_arguments


def get_config(arg: str | None = None):
  config = defaults.get_config()
  config.dataset = 'cifar10'
  config.dilation = 2
  config.num_epochs = 30
  return apply_arguments(config, arg)
