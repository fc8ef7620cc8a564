"""What each input pipeline costs here: peak host memory and in-loop
images/s of one training under config.input_pipeline 'stream' and
'device', and the stream's loader alone by number of threads.

  python bin/bench_input.py --steps=300 --log_every=50 -- \
      --config=configs/cifar10.py --config.data_dir=../shared/tensorflow_datasets

Arguments after `--` are bin/main.py's (without --workdir or the pipeline).
Each training is a fresh process (peak RSS is its own); its rate is the
median of its logged images/s after the first interval. The last line
printed is one JSON object.
"""

from absl import app, flags, logging

_STEPS = flags.DEFINE_integer('steps', 300, 'Training steps per run.')
_LOG_EVERY = flags.DEFINE_integer('log_every', 50, 'Steps per logged rate.')
_LOADER_STEPS = flags.DEFINE_integer('loader_steps', 100,
                                     'Steps the loader alone reads.')
_THREADS = flags.DEFINE_list('threads', ['1', '2', '4', '8'],
                             'Loader threads to time.')
_REPEATS = flags.DEFINE_integer('repeats', 3, 'Training pairs (stream, '
                                'device), in turns; medians reported.')


def main(argv) -> None:
  logging.set_verbosity(logging.WARNING)
  main_args = argv[1:]
  from flaxdil.config import files
  from flaxdil.errors import exit_on_user_error
  from flaxdil.experiments import input_benchmark
  with exit_on_user_error():
    config = files.from_main_args(main_args)
    input_benchmark.run(config, main_args, _STEPS.value, _LOG_EVERY.value,
                        _LOADER_STEPS.value, [int(t) for t in _THREADS.value],
                        _REPEATS.value)


if __name__ == '__main__':
  app.run(main)
