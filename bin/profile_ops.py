"""Where a config's train step spends its time, by network part and pass.

  python bin/profile_ops.py --config=configs/cifar10.py --steps=3
  python bin/profile_ops.py --config=configs/cifar10.py --config.image_size=96

Traces a few train steps on random data of the dataset's shape (the step
bin/bench.py times) with jax.profiler and charges each compiled op's time
to the part of the network its metadata names: each block's depthwise and
pointwise convolutions, BatchNorm and ReLU, forward and backward, and what
runs outside the network (keys and augmentation, loss, optimizer). Prints
two Markdown tables and, last, one JSON object. For a trace of a real
training to open in TensorBoard or Perfetto, use --config.profile_steps.
"""

import json

from absl import app, flags, logging
from ml_collections import config_flags

from flaxdil.cli.flags import parse_flags
from flaxdil.errors import exit_on_user_error

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.',
                                          lock_config=True)
_STEPS = flags.DEFINE_integer('steps', 3, 'Train steps traced.')


def main(argv) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)
  from flaxdil.experiments import op_profile  # Imports JAX: after flags.
  with exit_on_user_error():
    result = op_profile.profile(_CONFIG.value, steps=_STEPS.value)
  print(op_profile.table(result))
  print(json.dumps({'step_seconds': result['step_seconds'],
                    'ops_seconds': result['ops_seconds'],
                    'unattributed_seconds': result['unattributed_seconds'],
                    'parts': [[*key, seconds] for key, seconds
                              in sorted(result['parts'].items())]}),
        flush=True)


if __name__ == '__main__':
  flags.mark_flag_as_required('config')
  app.run(main, flags_parser=parse_flags)
