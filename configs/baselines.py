"""Table 1's baselines on CIFAR-10, with the recipe of configs/cifar10.py.

Argument: the model, and any other fields, comma-separated:
  configs/baselines.py:model=mobilenet_v1
  configs/baselines.py:model=vgg16,num_epochs=10
Models: mobilenet_v1 (width 1.0), squeezenet (1.0), googlenet (Inception
v1, no auxiliary heads), vgg16; see flaxdil/models/baselines.py for how
their CIFAR-10 stems differ from the published ImageNet ones.
"""

from flaxdil.config import files
from flaxdil.config.args import apply_arguments


def get_config(arg: str | None = None):
  config = files.load('cifar10.py', relative_to=__file__)
  config.model = 'mobilenet_v1'
  config.stem = 'cifar'
  return apply_arguments(config, arg)
