"""Fault injection: interrupt a training run many times, resume it each
time, and compare its final checkpoint with an uninterrupted run's.

Used by bin/faults.py (and, briefly, by a test). Each interruption is one of
  kill9        kill -9 at a random moment of training
  kill9_save   kill -9 while a checkpoint is being written (Orbax's
               temporary directory exists)
  sigterm      SIGTERM at a random moment: expects exit code 75 and a
               checkpoint of the step it stopped after
  sigint       the same with SIGINT (Ctrl-C)
  double       SIGTERM, then SIGINT 50 ms later, while the first one's
               checkpoint is being saved: the second must change nothing
The runs are real processes of flaxdil's command line (`python -m flaxdil`,
what bin/main.py runs), in the current directory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import re
import signal
import subprocess
import sys
import time

import numpy as np

from flaxdil.errors import EXIT_PREEMPTED

KINDS = ('kill9', 'kill9_save', 'sigterm', 'sigint', 'double')


@dataclasses.dataclass
class Interruption:
  kind: str
  reached_step: int        # The last step the process logged.
  exit_code: int
  resumed_step: int = -1   # Where the next start resumed (-1: from scratch).

  @property
  def steps_lost(self) -> int:
    return max(self.reached_step - max(self.resumed_step, 0), 0)


def _start(args: list[str], log_path: str) -> subprocess.Popen:
  log = open(log_path, 'w')
  return subprocess.Popen([sys.executable, '-m', 'flaxdil', *args], stdout=log,
                          stderr=subprocess.STDOUT, text=True)


def _last_step(log_path: str) -> int:
  steps = re.findall(r'^step +(\d+)/', open(log_path).read(), re.M)
  return int(steps[-1]) if steps else 0


def _training(log_path: str) -> bool:
  """Whether the process is in its training loop (not loading, not in the
  final test evaluation, where signals are not caught)."""
  steps = re.findall(r'^step +(\d+)/(\d+)', open(log_path).read(), re.M)
  return bool(steps) and int(steps[-1][0]) < int(steps[-1][1]) - 1


def _resumed_step(log_path: str) -> int:
  found = re.findall(r'Resumed from .* at step (\d+)\.', open(log_path).read())
  return int(found[0]) if found else -1


def _saving(workdir: str) -> bool:
  directory = os.path.join(workdir, 'checkpoints')
  return os.path.isdir(directory) and any(
      'tmp' in name for name in os.listdir(directory))


def _interrupt(process, kind: str, workdir: str, log_path: str,
               rng: random.Random, max_delay: float) -> None:
  """Waits until training runs, then interrupts as `kind` says."""
  while process.poll() is None and not _last_step(log_path):
    time.sleep(0.05)
  deadline = time.monotonic() + rng.uniform(0.2, max_delay)
  while process.poll() is None and time.monotonic() < deadline + (
      30 if kind == 'kill9_save' else 0):
    if kind == 'kill9_save' and _saving(workdir):
      break
    if kind != 'kill9_save' and time.monotonic() >= deadline:
      break
    time.sleep(0.002)
  if process.poll() is not None or not _training(log_path):
    return
  process.send_signal({'kill9': signal.SIGKILL, 'kill9_save': signal.SIGKILL,
                       'sigterm': signal.SIGTERM, 'sigint': signal.SIGINT,
                       'double': signal.SIGTERM}[kind])
  if kind == 'double':
    time.sleep(0.05)
    if process.poll() is None:
      process.send_signal(signal.SIGINT)


def _final_arrays(workdir: str) -> dict:
  import jax
  import orbax.checkpoint as ocp
  directory = os.path.join(workdir, 'checkpoints')
  step = max(int(s) for s in os.listdir(directory) if s.isdigit())
  tree = ocp.StandardCheckpointer().restore(
      os.path.join(directory, str(step), 'default'))
  return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in
          jax.tree_util.tree_flatten_with_path(tree)[0]}, step


def run(args: list[str], root: str, interruptions: int, seed: int = 0,
        max_delay: float = 8.0, kinds=KINDS, timeout: float = 3600) -> dict:
  """Trains `args` (bin/main.py flags without --workdir) uninterrupted in
  ROOT/reference and interrupted `interruptions` times in ROOT/faulty;
  returns (and writes to ROOT/faults.json) what survived."""
  rng = random.Random(seed)
  reference, faulty = (os.path.join(root, 'reference'),
                       os.path.join(root, 'faulty'))
  os.makedirs(root, exist_ok=True)
  start = time.monotonic()
  if not os.path.exists(os.path.join(reference, 'summary.json')):
    code = _start(args + [f'--workdir={reference}'],
                  os.path.join(root, 'reference.log')).wait(timeout)
    if code:
      raise RuntimeError(f'the uninterrupted run failed (exit {code}); see '
                         f'{root}/reference.log')
  events, failed_starts, damaged, session = [], 0, 0, 0
  while True:
    session += 1
    log_path = os.path.join(root, f'faulty-{session}.log')
    process = _start(args + [f'--workdir={faulty}'], log_path)
    if events:
      # Known once the process logged its first step.
      while process.poll() is None and not _last_step(log_path):
        time.sleep(0.05)
      events[-1].resumed_step = _resumed_step(log_path)
    if len(events) < interruptions:
      kind = kinds[len(events) % len(kinds)] if len(kinds) > 1 else kinds[0]
      _interrupt(process, kind, faulty, log_path, rng, max_delay)
      code = process.wait(timeout)
      if code == 0:  # Training ended before the interruption came.
        break
      events.append(Interruption(kind, _last_step(log_path), code))
      expected = (-signal.SIGKILL if kind.startswith('kill9')
                  else EXIT_PREEMPTED)
      failed_starts += code != expected
    else:
      code = process.wait(timeout)
      failed_starts += code != 0
      if code == 0:
        break
      if session > interruptions + 3:
        raise RuntimeError(f'the faulty run does not finish; see {log_path}')
    damaged += open(log_path).read().count('is damaged')
  want, want_step = _final_arrays(reference)
  got, got_step = _final_arrays(faulty)
  max_delta = max(float(np.max(np.abs(want[k].astype(np.float64)
                                      - got[k].astype(np.float64)), initial=0))
                  for k in want)
  bitwise = want_step == got_step and all(
      np.array_equal(want[k], got[k]) for k in want) and set(want) == set(got)
  lost = [e.steps_lost for e in events]
  result = {
      'interruptions': len(events),
      'by_kind': {k: sum(e.kind == k for e in events) for k in kinds},
      'survived': sum(e.resumed_step >= 0 or e.reached_step == 0
                      for e in events),
      'resumes_failed': failed_starts,
      'checkpoints_lost': damaged,
      'steps_lost_per_interruption': {
          'mean': float(np.mean(lost)) if lost else 0.0,
          'max': max(lost, default=0),
          'sigterm_or_sigint_max': max(
              (e.steps_lost for e in events if not e.kind.startswith('kill')),
              default=0)},
      'final_step': got_step,
      'bitwise_equal': bool(bitwise),
      'max_abs_param_difference': max_delta,
      'arrays_compared': len(want),
      'wall_time_sec': time.monotonic() - start,
      'events': [dataclasses.asdict(e) for e in events],
  }
  with open(os.path.join(root, 'faults.json'), 'w') as f:
    json.dump(result, f, indent=2)
  return result
