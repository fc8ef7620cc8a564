"""Published figures that flaxdil's results are compared with, in one place.

The paper: Sun, Zhou, Zhang, He, "A Lightweight Neural Network Combining
Dilated Convolution and Depthwise Separable Convolution". The report, the
inspection and the tests read these; nothing here is measured by flaxdil.
"""

# Table 1: CIFAR-10 test accuracy (%) and parameters of each network.
TABLE1_ACCURACY = {'dilated_net': 84.25, 'mobilenet_v1': 83.91,
                   'googlenet': 83.84, 'squeezenet': 69.83, 'vgg16': 86.17}
TABLE1_PARAMS = {'dilated_net': 3.1e6, 'mobilenet_v1': 4.2e6,
                 'squeezenet': 1.25e6, 'googlenet': 6.8e6, 'vgg16': 138e6}

# Table 2: CIFAR-10 test accuracy (%) of the paper's network against δ.
TABLE2_ACCURACY = {0: 82.04, 1: 83.32, 2: 84.25, 3: 83.56}

# Table 3: Tiny ImageNet accuracy (%) of the paper's network (δ = 2).
TABLE3_ACCURACY = {'dilated_net': 85.01}

# Multiply-adds per 224×224 image of the baselines as published (1000
# classes), from Howard et al., "MobileNets" (2017), Table 8: 1.0
# MobileNet-224 569 M, GoogLeNet 1550 M, VGG16 15300 M. The paper under
# reproduction gives none; these check that our ImageNet forms are the
# published networks.
PUBLISHED_IMAGENET_MACS = {'mobilenet_v1': 569e6, 'googlenet': 1550e6,
                           'vgg16': 15300e6}


def expected_accuracy(model: str, dilation) -> float | None:
  """The paper's CIFAR-10 accuracy (%) to compare a run of `model` with:
  Table 2's row for the paper's network with one δ everywhere, else the
  model's Table 1 row (for a δ per module, the paper's network's 84.25)."""
  if model == 'dilated_net' and isinstance(dilation, int):
    return TABLE2_ACCURACY.get(dilation)
  return TABLE1_ACCURACY.get(model)
