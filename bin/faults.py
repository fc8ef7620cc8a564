"""Fault injection: interrupts a training run N times, resumes it each time,
and compares its final checkpoint with an uninterrupted run's.

  python bin/faults.py --root=/tmp/faults --interruptions=30 -- \
      --config=configs/tiny.py --config.data_dir=../shared/tensorflow_datasets \
      --config.num_train_steps=400 --config.checkpoint_every_steps=10

Arguments after `--` are bin/main.py's (without --workdir). Interruptions
cycle through kill -9 at a random moment, kill -9 during a checkpoint save,
SIGTERM and SIGINT. Prints the interruptions survived, failed resumes,
checkpoints lost, steps lost per interruption and the largest parameter
difference from the uninterrupted run; writes ROOT/faults.json.
"""

import json

from absl import app, flags

_ROOT = flags.DEFINE_string('root', None, 'Directory for both runs and logs.')
_N = flags.DEFINE_integer('interruptions', 30, 'How many interruptions.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the interruption times.')
_MAX_DELAY = flags.DEFINE_float(
    'max_delay', 8.0, 'Seconds of training before a random interruption, at '
    'most (uniform from 0.2).')


def main(argv) -> None:
  from flaxdil.experiments import faults
  result = faults.run(argv[1:], _ROOT.value, _N.value, seed=_SEED.value,
                      max_delay=_MAX_DELAY.value)
  lost = result['steps_lost_per_interruption']
  print(f'{result["interruptions"]} interruptions {result["by_kind"]}: '
        f'{result["survived"]} survived, {result["resumes_failed"]} resumes '
        f'failed, {result["checkpoints_lost"]} checkpoints lost; steps lost '
        f'per interruption: mean {lost["mean"]:.1f}, max {lost["max"]} '
        f'(SIGTERM/SIGINT: max {lost["sigterm_or_sigint_max"]}); final step '
        f'{result["final_step"]}: {"bitwise equal" if result["bitwise_equal"] else "DIFFERENT"}'
        f' to the uninterrupted run ({result["arrays_compared"]} arrays, max '
        f'|Δ| {result["max_abs_param_difference"]:.3g}); '
        f'{result["wall_time_sec"] / 60:.1f} min.')
  print(json.dumps({k: v for k, v in result.items() if k != 'events'}))


if __name__ == '__main__':
  flags.mark_flag_as_required('root')
  app.run(main)
