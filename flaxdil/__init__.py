"""flaxdil: dilated depthwise separable CNNs in JAX/Flax."""

__version__ = '0.1.0'
