"""flaxdil: dilated depthwise separable CNNs in JAX/Flax.

The package is a set of rooms, each a subpackage that imports only the
rooms below it (README, "Code layout"; tests/test_layout.py checks it):

  cli           the command line (bin/main.py, `flaxdil`, python -m flaxdil)
  experiments   sweeps, reports, benchmarks, fault injection
  export        ONNX, int8 ONNX and jax.export artifacts
  training      the pure steps, devices, the loop, evaluation
  workdir       strict files, the lock, the run's record, checkpoints
  config        defaults, arguments, config files, every field's rule
  inspection    what a model is, read off the model itself
  distributed   several processes; stopping cleanly on a signal
  data, models  TFDS splits and batches; the networks and their kernels

Importing flaxdil imports nothing else: each room is imported by name,
e.g. `from flaxdil.training import loop`.
"""

__version__ = '0.2.0'
