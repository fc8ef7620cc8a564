"""Timing, and the machine and code it was measured on (base: used by every
room that measures speed or records results: benchmarks, the exporter, the
speedrun, the release)."""

from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
import time


def median_seconds(fn, runs: int) -> float:
  times = []
  for _ in range(runs):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return statistics.median(times)


def cpu_description() -> str:
  """The host CPU as /proc/cpuinfo names it: the same model name covers
  machines whose speed differs severalfold, so family, model and vector
  width are named too."""
  fields = {}
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        key, _, value = line.partition(':')
        fields.setdefault(key.strip(), value.strip())
  except OSError:
    return platform.processor() or platform.machine()
  flags = fields.get('flags', '').split()
  vector = ('avx512' if 'avx512f' in flags else 'avx2' if 'avx2' in flags
            else 'no avx2')
  return (f'{fields.get("model name", "?")} (family {fields.get("cpu family", "?")} '
          f'model {fields.get("model", "?")}, {os.cpu_count()} cores, {vector})')


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def git_commit() -> str | None:
  """The code's commit: $FLAXDIL_COMMIT where set (a copy of the tree
  whose .git is absent or stale, as on a lent device machine), else git's."""
  if os.environ.get('FLAXDIL_COMMIT'):
    return os.environ['FLAXDIL_COMMIT']
  here = os.path.dirname(os.path.abspath(__file__))
  try:
    return subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=here,
                          capture_output=True, text=True,
                          check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return None
