"""Child processes that stop with the command that started them.

bin/speedrun.py trains each seed (several at once with --parallel), and
`bin/sweep.py --parallel` each shard, as a child process. A SIGTERM to the
parent (`kill`, a scheduler's preemption) is passed on to every child
still running, which checkpoints and exits as for any preemption
(flaxdil.distributed.preemption, exit code 75). Without that, a stopped
speedrun left its training running unwatched, holding the cores and its
workdir's lock, and the next measurement shared the machine with it.
Ctrl-C needs no passing on: the terminal sends SIGINT to the whole process
group.
"""

from __future__ import annotations

import signal
import subprocess
import time


def wait(children: list[subprocess.Popen]
         ) -> tuple[list[int], bool, list[float]]:
  """Waits for every child; returns their exit codes, whether this process
  got a SIGTERM meanwhile (passed on to each child then running), and the
  time.monotonic() at which each child ended, so that each of several
  seeds run at once is timed to its own end, not the last one's. Call from
  the main thread (signal handlers live there)."""
  stopped = []

  def pass_on(signum, frame):
    del frame
    stopped.append(signum)
    for child in children:
      if child.poll() is None:
        child.send_signal(signum)

  previous = signal.signal(signal.SIGTERM, pass_on)
  ended = [None] * len(children)
  try:
    while None in ended:
      # Block on the first child still running, briefly, so that a lone
      # child's end is seen the moment it comes; then look at the others.
      first = ended.index(None)
      try:
        children[first].wait(timeout=0.1)
      except subprocess.TimeoutExpired:
        pass
      for i, child in enumerate(children):
        if ended[i] is None and child.poll() is not None:
          ended[i] = time.monotonic()
    return [child.returncode for child in children], bool(stopped), ended
  finally:
    signal.signal(signal.SIGTERM, previous)
