"""Shards: one sweep spread over processes or machines that share its root.

Shard I of M (--shard=I/M, a SLURM job array's task, say) first trains the
runs whose index is I modulo M, then any other that is neither finished
nor running (flaxdil.experiments.sweep.run_sweep skips those), so idle
shards take over the runs of shards that are gone. On one machine,
`parallel` starts M shards at once, each pinned to its own cores (XLA:CPU
sizes its thread pool by the cores a process may use).
"""

from __future__ import annotations

import os
import subprocess
import sys

from flaxdil.cores import environment_pinned_to
from flaxdil.errors import ConfigError
from flaxdil.experiments import children


def parse_shard(text: str | None) -> tuple[int, int]:
  """'I/M' → (I, M), checked; None → (0, 1): the whole sweep."""
  if not text:
    return 0, 1
  try:
    index, count = (int(part) for part in text.split('/'))
  except ValueError:
    index, count = -1, 0
  if not 0 <= index < count:
    raise ConfigError(f'--shard={text!r} must be I/M with 0 <= I < M, e.g. '
                      '--shard=0/4 (SLURM: --shard=$SLURM_ARRAY_TASK_ID/'
                      '$SLURM_ARRAY_TASK_COUNT).')
  return index, count


def shard_order(count: int, shard: tuple[int, int]) -> list[int]:
  """The order in which a shard tries a sweep's `count` runs: its own
  (index ≡ I mod M), then every other, starting after its own, so that
  idle shards take over the runs of shards that are gone."""
  index, shards = shard
  own = [i for i in range(count) if i % shards == index]
  return own + [i for i in range(count) if i % shards != index]


def parallel(argv: list[str], count: int, log_dir: str) -> list[int]:
  """Runs bin/sweep.py's command `argv` (without --parallel) as `count`
  shards at once on this machine, shard k pinned to the k-th of `count`
  equal slices of the cores, its output in LOG_DIR/shard-k.log; returns
  their exit codes."""
  os.makedirs(log_dir, exist_ok=True)
  started = []
  for k, mine in enumerate(core_slices(count)):
    log = open(os.path.join(log_dir, f'shard-{k}.log'), 'a')
    started.append(subprocess.Popen(
        [sys.executable, *argv, f'--shard={k}/{count}'], stdout=log,
        stderr=subprocess.STDOUT,
        env=environment_pinned_to(mine)))  # Pins itself at start.
    log.close()
  return children.wait(started)[0]  # A SIGTERM here stops every shard.


def core_slices(count: int) -> list[set[int]]:
  """The cores this process may use, cut into `count` equal slices in
  order: one per run of `count` at once (`bin/sweep.py --parallel` and
  `bin/speedrun.py --parallel`)."""
  cores = sorted(os.sched_getaffinity(0))
  if not 1 <= count <= len(cores):
    raise ConfigError(f'--parallel={count}: this machine lets this process '
                      f'use {len(cores)} cores; give 1 to {len(cores)}.')
  return [set(cores[k * len(cores) // count:(k + 1) * len(cores) // count])
          for k in range(count)]
