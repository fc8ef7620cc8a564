"""Speed of a config's model on this machine: train, eval, latency, memory.

  python bin/bench.py --config=configs/cifar10.py [--config.conv_impl=lax]

Compiles first (compile time reported on its own), then times several runs
and reports medians. Uses random data of the dataset's shape, so it needs the
dataset's metadata only. The last line printed is one JSON object.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from flaxdil.cli.flags import parse_flags
from flaxdil.errors import exit_on_user_error

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.',
                                          lock_config=True)
_RUNS = flags.DEFINE_integer('runs', 5, 'Timed runs; medians are reported.')
_STEPS = flags.DEFINE_integer('steps', 5, 'Train/eval steps per timed run.')
_LATENCY_CALLS = flags.DEFINE_integer('latency_calls', 50,
                                      'Batch-1 calls per latency run.')


def main(argv) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)
  from flaxdil.experiments import benchmark  # Imports JAX: after flags.
  with exit_on_user_error():
    benchmark.run(_CONFIG.value, runs=_RUNS.value, steps=_STEPS.value,
                  latency_calls=_LATENCY_CALLS.value)


if __name__ == '__main__':
  flags.mark_flag_as_required('config')
  app.run(main, flags_parser=parse_flags)
