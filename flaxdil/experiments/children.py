"""Child processes that stop with the command that started them.

bin/speedrun.py trains each seed, and `bin/sweep.py --parallel` each shard,
as a child process. A SIGTERM to the parent (`kill`, a scheduler's
preemption) is passed on to every child still running, which checkpoints
and exits as for any preemption (flaxdil.distributed.preemption, exit code
75). Without that, a stopped speedrun left its training running unwatched,
holding the cores and its workdir's lock, and the next measurement shared
the machine with it. Ctrl-C needs no passing on: the terminal sends SIGINT
to the whole process group.
"""

from __future__ import annotations

import signal
import subprocess


def wait(children: list[subprocess.Popen]) -> tuple[list[int], bool]:
  """Waits for every child; returns their exit codes, and whether this
  process got a SIGTERM meanwhile (passed on to each child then running).
  Call from the main thread (signal handlers live there)."""
  stopped = []

  def pass_on(signum, frame):
    del frame
    stopped.append(signum)
    for child in children:
      if child.poll() is None:
        child.send_signal(signum)

  previous = signal.signal(signal.SIGTERM, pass_on)
  try:
    return [child.wait() for child in children], bool(stopped)
  finally:
    signal.signal(signal.SIGTERM, previous)
