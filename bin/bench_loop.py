"""A real training's loop against its step, on this machine: the images/s
a training on the real data logs (metrics.jsonl) and the bare step's, as
bin/bench.py times it, in turns.

  python bin/bench_loop.py --steps=2000 --log_every=250 -- \
      --config=configs/tiny.py --config.batch_size=64 \
      --config.data_dir=../shared/tensorflow_datasets

Arguments after `--` are bin/main.py's (without --workdir). Each training
is a fresh process; its rate is the median of its logged images/s after
the first interval (which holds the compile). The last line printed is one
JSON object.
"""

from absl import app, flags, logging

_STEPS = flags.DEFINE_integer('steps', 2000, 'Training steps per run.')
_LOG_EVERY = flags.DEFINE_integer('log_every', 250, 'Steps per logged rate.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Pairs (training, step), in '
                                'turns; medians reported.')
_RUNS = flags.DEFINE_integer('runs', 3, 'Timed runs of the step per pair.')
_STEP_STEPS = flags.DEFINE_integer('step_steps', 20,
                                   'Steps per timed run of the step.')


def main(argv) -> None:
  logging.set_verbosity(logging.WARNING)
  from flaxdil.config import files
  from flaxdil.errors import exit_on_user_error
  from flaxdil.experiments import loop_benchmark
  with exit_on_user_error():
    loop_benchmark.run(files.from_main_args(argv[1:]), argv[1:],
                       _STEPS.value, _LOG_EVERY.value, _REPEATS.value,
                       _RUNS.value, _STEP_STEPS.value)


if __name__ == '__main__':
  app.run(main)
