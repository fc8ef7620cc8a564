"""Time to accuracy: N seeds of a config, each timed from process start to
its printed test accuracy (data read, compile and evaluation included).

  python bin/speedrun.py --seeds=5 --target=0.8425 --out=workdirs/fast -- \
      --config=configs/cifar10_fast.py --config.data_dir=../shared/tensorflow_datasets

Arguments after `--` are bin/main.py's (without --workdir or the seed).
Each seed trains in OUT/seed-K (a new directory: a resumed run is not timed
end to end), its output in OUT/seed-K.log, its result in OUT/seed-K.json;
then OUT/speedrun.md holds the table (each seed's accuracy, wall time,
images seen, logged median images/s and last training accuracy; mean ±
std, the 95 % interval, the share of seeds at or above --target) and
OUT/speedrun.json the same with the command, commit, CPU and compile
cache. Run it again, or with more seeds, and the seeds finished in
OUT are kept; a seed stopped midway starts over (its workdir kept aside as
OUT/seed-K.stopped).

--parallel=M trains M seeds at once, each pinned to its own 1/M of the
cores, for seeds and ablations whose accuracy is wanted sooner: each
seed's wall time is then its own cores' (the table says so), not the
machine's, and a pinned run is not bitwise the same as an unpinned one.
"""

from absl import app, flags, logging

_SEEDS = flags.DEFINE_integer('seeds', 5, 'Seeds 0..N-1 (or --first_seed on).')
_FIRST_SEED = flags.DEFINE_integer('first_seed', 0, 'The first seed.')
_OUT = flags.DEFINE_string('out', None, 'Directory for the seeds\' workdirs '
                           'and the table.')
_TARGET = flags.DEFINE_float('target', None, 'Test accuracy in [0, 1] to '
                             'count seeds against, e.g. 0.8425.')
_PARALLEL = flags.DEFINE_integer('parallel', 1, 'Train M seeds at once, '
                                 'each pinned to its own 1/M of the cores.')


def main(argv) -> None:
  logging.set_verbosity(logging.WARNING)
  from flaxdil import cores
  from flaxdil.config import files
  from flaxdil.errors import exit_on_user_error
  from flaxdil.experiments import speedrun
  with exit_on_user_error():
    cores.pin_from_environment()  # --parallel slices the cores it names.
    speedrun.run(files.from_main_args(argv[1:]), argv[1:],
                 list(range(_FIRST_SEED.value,
                            _FIRST_SEED.value + _SEEDS.value)),
                 _OUT.value, _TARGET.value, at_once=_PARALLEL.value)


if __name__ == '__main__':
  flags.mark_flag_as_required('out')
  app.run(main)
