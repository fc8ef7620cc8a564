"""Speed of a config's model on this machine: train, eval, latency, memory.

  python bin/bench.py --config=configs/cifar10.py [--config.conv_impl=lax]
  python bin/bench.py --config=configs/tiny.py --config.batch_size=64 \
      --loop_steps=3000 --loop_log_every=500 --config.steps_per_dispatch=8

Compiles first (compile time reported on its own), then times several runs
and reports medians. Uses random data of the dataset's shape, so it needs the
dataset's metadata only; the loop trains on as many random images as the
real training split holds where the data is prepared (--config.data_dir),
so a cost that grows with the split shows. bin/bench_loop.py times a real
training's loop. The last line printed is one JSON object.
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
_LOOP_STEPS = flags.DEFINE_integer(
    'loop_steps', 0, 'Also time the training loop itself for this many steps '
    '(0: off), on random data, with the config\'s steps_per_dispatch.')
_LOOP_REPEATS = flags.DEFINE_integer(
    'loop_repeats', 3, 'Loop runs, each followed by the step timed again; '
    'the medians are reported.')
_LOOP_LOG_EVERY = flags.DEFINE_integer(
    'loop_log_every', 100, 'The loop\'s logging interval; its rate is the '
    'median of the logged rates after the first.')


def main(argv) -> None:
  del argv
  logging.set_verbosity(logging.WARNING)
  from flaxdil.experiments import benchmark  # Imports JAX: after flags.
  with exit_on_user_error():
    benchmark.run(_CONFIG.value, runs=_RUNS.value, steps=_STEPS.value,
                  latency_calls=_LATENCY_CALLS.value,
                  loop_steps=_LOOP_STEPS.value,
                  loop_log_every=_LOOP_LOG_EVERY.value,
                  loop_repeats=_LOOP_REPEATS.value)


if __name__ == '__main__':
  flags.mark_flag_as_required('config')
  app.run(main, flags_parser=parse_flags)
