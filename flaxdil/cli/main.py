"""flaxdil's command line: train, evaluate or export a checkpoint, inspect a
model.

  python bin/main.py --config=configs/cifar10.py --workdir=/tmp/run
  python bin/main.py --config=configs/cifar10.py --workdir=/tmp/run --mode=eval
  python bin/main.py --config=configs/cifar10.py --mode=inspect [--json]
  python bin/main.py --config=configs/cifar10.py --workdir=/tmp/run --mode=export
  python bin/main.py --mode=predict --weights=dilated_net_d0_fast photos/ a.png
  python bin/main.py --mode=inspect --weights=dilated_net_d0_fast

(`flaxdil predict ...` is `flaxdil --mode=predict ...`, and so for every
mode.) A released weight (--weights: a name of flaxdil.pretrained.list(),
a .flaxdil file or URL) stands in for --config and --workdir in inspect and
predict; export writes its artifacts into --workdir.

(`flaxdil ...` and `python -m flaxdil ...` are the same command, once
flaxdil is installed.)

Several processes (one per host or per GPU; docs/processes.md):
the same command on each, plus
  --coordinator_address=HOST0:PORT --num_processes=N --process_id=I
or the variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID;
under SLURM or on a TPU pod slice JAX finds all three itself.

Exit codes: 0 done, 2 bad input, 3 training diverged, 4 another process of
the run was lost, 65 predict could not read some inputs (the others are
classified), 75 stopped by SIGTERM or SIGINT after saving a checkpoint
(after 4 or 75, run the same command(s) to resume).
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from flaxdil import cores
from flaxdil.cli.flags import parse_flags
from flaxdil.errors import exit_on_user_error

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, e.g. configs/cifar10.py[:FIELD=VALUE,...].',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Directory for checkpoints, metrics and results.')
MODES = ('train', 'eval', 'inspect', 'export', 'predict')
# The modes a released weight (--weights) can stand in for a workdir in.
_WEIGHT_MODES = ('inspect', 'export', 'predict')
_MODE = flags.DEFINE_enum('mode', 'train', MODES,
                          'train (resumes a workdir), eval (a checkpoint on a '
                          'whole split), inspect (the model, or with '
                          '--workdir its restored checkpoint), export (a '
                          'checkpoint to ONNX, int8 ONNX and jax.export, '
                          'verified: WORKDIR/export/) or predict (image '
                          'files, folders or globs after the flags, or '
                          '--split: top-k classes).')
_WEIGHTS = flags.DEFINE_string(
    'weights', None, 'inspect/export/predict: a released weight (a name of '
    'flaxdil.pretrained.list(), a .flaxdil file or an http(s) URL) instead '
    'of a workdir\'s checkpoint.')
_OUTPUT = flags.DEFINE_string(
    'output', None, 'predict: write here (.jsonl, .csv, else a table) '
    'instead of a table on stdout.')
_TOP_K = flags.DEFINE_integer('top_k', 5, 'predict: classes per image.')
_BACKEND = flags.DEFINE_enum(
    'backend', 'jax', ['jax', 'onnx', 'int8'],
    'predict: JAX, ONNX Runtime on the float graph, or on the int8 export.')
_BATCH = flags.DEFINE_integer('batch', 64, 'predict: images per batch.')
_CHECKPOINT_STEP = flags.DEFINE_integer(
    'checkpoint_step', None,
    'eval/inspect/export: this step instead of the best.')
_SPLIT = flags.DEFINE_string('split', None, 'eval: split (default '
                             'config.test_split); predict: a split to '
                             'classify instead of files.')
_JSON = flags.DEFINE_bool('json', False, 'inspect: print one JSON document.')
_COORDINATOR_ADDRESS = flags.DEFINE_string(
    'coordinator_address', None,
    'Several processes: HOST:PORT of process 0 (default $JAX_COORDINATOR_'
    'ADDRESS, or found by JAX under SLURM and on TPU pods).')
_NUM_PROCESSES = flags.DEFINE_integer(
    'num_processes', None, 'Several processes: how many (default '
    '$JAX_NUM_PROCESSES).')
_PROCESS_ID = flags.DEFINE_integer(
    'process_id', None, 'Several processes: this one\'s index, 0 to '
    'num_processes - 1 (default $JAX_PROCESS_ID).')


def run(argv) -> None:
  mode = _MODE.value
  if len(argv) > 1 and mode != 'predict':
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  # Imports JAX: --help stays quick.
  from flaxdil.cli import modes
  from flaxdil.distributed import processes
  from flaxdil.errors import FlaxdilError
  config, workdir, weights = _CONFIG.value, _WORKDIR.value, _WEIGHTS.value
  with exit_on_user_error():
    if config is None and not (weights and mode in _WEIGHT_MODES):
      raise FlaxdilError(
          f'--mode={mode} needs --config=FILE (e.g. configs/cifar10.py)'
          + (' or --weights=NAME (flaxdil.pretrained.list())'
             if mode in _WEIGHT_MODES else '') + '.')
    if weights and mode not in _WEIGHT_MODES:
      raise FlaxdilError(
          f'--weights is for inspect, export and predict; --mode={mode} '
          'reads --workdir. To start training from a released weight, set '
          f'--config.init_from={weights}.')
    processes.initialize(_COORDINATOR_ADDRESS.value, _NUM_PROCESSES.value,
                         _PROCESS_ID.value)
    processes.quiet_unless_primary()
    if mode == 'train':
      modes.train(config, workdir)
    elif mode == 'eval':
      modes.evaluate(config, workdir, _SPLIT.value, _CHECKPOINT_STEP.value)
    elif mode == 'export':
      modes.export_model(config, workdir, _CHECKPOINT_STEP.value, weights)
    elif mode == 'predict':
      from flaxdil.predict import EXIT_SOME_FAILED
      summary = modes.predict(config, workdir, weights, argv[1:],
                              _SPLIT.value, _OUTPUT.value, _BACKEND.value,
                              _TOP_K.value, _CHECKPOINT_STEP.value,
                              _BATCH.value)
      if summary['failed']:
        sys.exit(EXIT_SOME_FAILED)
    else:
      modes.inspect_model(config, workdir, _CHECKPOINT_STEP.value, _JSON.value,
                          weights)


def main() -> None:
  """The command line (bin/main.py, `flaxdil`, `python -m flaxdil`)."""
  sys.modules['__main__'].__doc__ = __doc__  # What --help prints first.
  # `flaxdil predict ...` is `flaxdil --mode=predict ...`.
  if len(sys.argv) > 1 and sys.argv[1] in MODES:
    sys.argv[1:2] = [f'--mode={sys.argv[1]}']
  with exit_on_user_error():
    # A seed of `speedrun --parallel` (or a user) names its cores: pinned
    # while this process has one thread, before JAX starts its own.
    cores.pin_from_environment()
  app.run(run, flags_parser=parse_flags)
