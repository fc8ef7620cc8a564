"""flaxdil's command line: train, evaluate or export a checkpoint, inspect a
model.

  python bin/main.py --config=configs/cifar10.py --workdir=/tmp/run
  python bin/main.py --config=configs/cifar10.py --workdir=/tmp/run --mode=eval
  python bin/main.py --config=configs/cifar10.py --mode=inspect [--json]
  python bin/main.py --config=configs/cifar10.py --workdir=/tmp/run --mode=export

(`flaxdil ...` and `python -m flaxdil ...` are the same command, once
flaxdil is installed.)

Several processes (one per host or per GPU; docs/processes.md):
the same command on each, plus
  --coordinator_address=HOST0:PORT --num_processes=N --process_id=I
or the variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID;
under SLURM or on a TPU pod slice JAX finds all three itself.

Exit codes: 0 done, 2 bad input, 3 training diverged, 4 another process of
the run was lost, 75 stopped by SIGTERM or SIGINT after saving a checkpoint
(after 4 or 75, run the same command(s) to resume).
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from flaxdil.cli.flags import parse_flags
from flaxdil.errors import exit_on_user_error

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Config file, e.g. configs/cifar10.py[:FIELD=VALUE,...].',
    lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', None,
                               'Directory for checkpoints, metrics and results.')
_MODE = flags.DEFINE_enum('mode', 'train', ['train', 'eval', 'inspect', 'export'],
                          'train (resumes a workdir), eval (a checkpoint on a '
                          'whole split), inspect (the model, or with '
                          '--workdir its restored checkpoint) or export (a '
                          'checkpoint to ONNX, int8 ONNX and jax.export, '
                          'verified: WORKDIR/export/).')
_CHECKPOINT_STEP = flags.DEFINE_integer(
    'checkpoint_step', None,
    'eval/inspect/export: this step instead of the best.')
_SPLIT = flags.DEFINE_string('split', None, 'eval: split (default config.test_split).')
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
  if len(argv) > 1:
    raise app.UsageError(f'unexpected arguments: {argv[1:]}')
  logging.set_verbosity(logging.WARNING)
  # Imports JAX: --help stays quick.
  from flaxdil.cli import modes
  from flaxdil.distributed import processes
  config, workdir = _CONFIG.value, _WORKDIR.value
  with exit_on_user_error():
    processes.initialize(_COORDINATOR_ADDRESS.value, _NUM_PROCESSES.value,
                         _PROCESS_ID.value)
    processes.quiet_unless_primary()
    if _MODE.value == 'train':
      modes.train(config, workdir)
    elif _MODE.value == 'eval':
      modes.evaluate(config, workdir, _SPLIT.value, _CHECKPOINT_STEP.value)
    elif _MODE.value == 'export':
      modes.export_model(config, workdir, _CHECKPOINT_STEP.value)
    else:
      modes.inspect_model(config, workdir, _CHECKPOINT_STEP.value, _JSON.value)


def main() -> None:
  """The command line (bin/main.py, `flaxdil`, `python -m flaxdil`)."""
  sys.modules['__main__'].__doc__ = __doc__  # What --help prints first.
  flags.mark_flag_as_required('config')
  app.run(run, flags_parser=parse_flags)
