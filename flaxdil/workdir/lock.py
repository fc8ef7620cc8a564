"""One run per workdir: an OS file lock on WORKDIR/.lock.

The kernel releases the lock when its process dies, however it dies, so a
run killed with kill -9 never blocks the next start. The file names the
holder (host, PID, start time) so a refused second run can say who holds it.

A run of several processes is one run: its process 0 holds the lock for all
of them (`lock_for_run` shares the outcome with the others), and the file
says how many processes the holder leads.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time

import jax

from flaxdil.distributed import processes
from flaxdil.errors import WorkdirError

LOCK_NAME = '.lock'


class WorkdirInUse(WorkdirError):
  """Another live run holds the workdir's lock."""


class WorkdirLock:
  """Held from `acquire` until `release` (or the process's end)."""

  def __init__(self, workdir: str, num_processes: int = 1):
    self.path = os.path.join(workdir, LOCK_NAME)
    self.num_processes = num_processes
    self._fd = None

  def acquire(self) -> 'WorkdirLock':
    fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = _read_holder(fd)
      os.close(fd)
      raise WorkdirInUse(
          f'workdir {os.path.dirname(self.path)!r} is in use by another run '
          f'({holder}). Fix: wait for it to finish or stop it, or use another '
          '--workdir.') from None
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps({'host': socket.gethostname(), 'pid': os.getpid(),
                             'since': time.strftime('%Y-%m-%d %H:%M:%S'),
                             'processes': self.num_processes}).encode())
    os.fsync(fd)
    self._fd = fd
    return self

  def release(self) -> None:
    if self._fd is not None:
      fcntl.flock(self._fd, fcntl.LOCK_UN)
      os.close(self._fd)
      self._fd = None

  def __enter__(self):
    return self.acquire()

  def __exit__(self, *exc):
    self.release()


def _read_holder(fd: int) -> str:
  try:
    holder = json.loads(os.pread(fd, 4096, 0) or b'{}')
    processes = holder.get('processes', 1)
    of_run = f' (process 0 of {processes})' if processes > 1 else ''
    return (f'PID {holder["pid"]}{of_run} on host {holder["host"]}, since '
            f'{holder["since"]}')
  except (ValueError, KeyError, OSError):
    return 'holder unknown'


class _LockOfProcess0:
  """What a process other than 0 holds: process 0 locked the workdir for the
  whole run."""

  def release(self) -> None:
    pass


def check_path(workdir: str) -> None:
  """What can be told about the workdir without creating it."""
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise WorkdirError(f'--workdir={workdir!r} is a file, not a directory. '
                       'Fix: point --workdir at a directory (new or a '
                       'training workdir).')
  existing = os.path.abspath(workdir)
  while not os.path.exists(existing):
    existing = os.path.dirname(existing)
  if not os.access(existing, os.W_OK | os.X_OK) or (
      os.statvfs(existing).f_flag & os.ST_RDONLY):
    raise WorkdirError(f'cannot write to --workdir={workdir!r} ({existing} '
                       'is read-only). Fix: use a directory you can write to.')


def lock_for_run(workdir: str) -> WorkdirLock | _LockOfProcess0:
  """Creates the workdir if needed and takes its lock (process 0, for every
  process of the run), or says why not (on every process)."""
  if not processes.is_primary():
    processes.agree('workdir-lock', None)  # Raises process 0's refusal.
    return _LockOfProcess0()
  lock = WorkdirLock(workdir, jax.process_count())

  def acquire():
    try:
      os.makedirs(workdir, exist_ok=True)
      lock.acquire()
    except OSError as e:
      raise WorkdirError(f'cannot write to --workdir={workdir!r} '
                         f'({e.strerror}). Fix: use a directory you can '
                         'write to, on a disk with free space.') from None

  processes.agree('workdir-lock', acquire)
  return lock
