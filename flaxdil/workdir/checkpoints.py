"""Checkpoints in the workdir: atomic, verified, resumable, best kept by
validation.

Layout:
  WORKDIR/checkpoints/N/          Orbax checkpoints (the latest K and the best)
  WORKDIR/checksums/N.json        SHA-256 of every array of checkpoint N
  WORKDIR/train_seconds.json      training seconds (all sessions) at each one
  WORKDIR/damaged_checkpoints/    checkpoints found damaged, moved aside

Orbax writes each checkpoint to a temporary directory and renames it when
complete, so a run killed mid-save leaves the earlier ones intact. Damage
after that (a lost file, flipped bytes) is caught on restore: by Orbax where
the storage layer notices, and by the checksums, recorded before each save,
where it does not.

With several processes every process saves and restores (Orbax coordinates
them; the state is replicated, so a checkpoint is the same whatever the
process count that wrote it and restores on any); process 0 alone writes the
files beside the checkpoints and moves damaged ones aside.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from orbax.checkpoint.checkpoint_managers import preservation_policy

from flaxdil import quiet
from flaxdil.distributed import processes
from flaxdil.errors import WorkdirError
from flaxdil.workdir.files import is_disk_full, read_json, write_json_atomic

BEST_METRIC = 'validation_accuracy'


def _best_metric(metrics) -> float:
  return metrics[BEST_METRIC]


def _save_without_metrics(message: str) -> bool:
  # Orbax warns at every save that carries no metrics while it ranks by
  # them. Saves between validations (by steps, by time, on SIGTERM) carry
  # none by design: LatestN keeps them, BestN ranks only validated ones.
  return message.startswith('Requested `tracked_metric`; did not provide')


def _leaf_name(path) -> str:
  """A leaf's name as Orbax writes it: keys joined by dots. A TrainState
  field and a dict key of the same name give the same name, so a partial
  restore ({'ema': ...}) names its leaves as the full state did."""
  return '.'.join(str(getattr(k, 'name', getattr(k, 'key', getattr(k, 'idx', k))))
                  for k in path)


def array_checksums(tree) -> dict[str, str]:
  """{leaf name: 'dtype shape sha256'} for every array of a host tree."""
  sums = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
    array = np.ascontiguousarray(np.asarray(leaf))
    sums[_leaf_name(path)] = (f'{array.dtype} {list(array.shape)} '
                              f'{hashlib.sha256(array.tobytes()).hexdigest()}')
  return sums


class DamagedCheckpoint(Exception):
  """A checkpoint that cannot be read back as it was written."""


class CheckpointStore:
  """The workdir's Orbax CheckpointManager and the policy flaxdil uses."""

  def __init__(self, workdir: str, keep: int = 3, create: bool = True):
    quiet.drop_absl_lines(_save_without_metrics)
    self.workdir = os.path.abspath(workdir)
    self.directory = os.path.join(self.workdir, 'checkpoints')
    self._checksums = os.path.join(self.workdir, 'checksums')
    policy = preservation_policy.AnyPreservationPolicy([
        preservation_policy.LatestN(keep),
        preservation_policy.BestN(
            get_metric_fn=_best_metric, n=1,
            keep_checkpoints_without_metrics=False),
    ])
    self.manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            preservation_policy=policy, create=create,
            # Orbax stores metrics only where it ranks checkpoints by them.
            best_fn=_best_metric, best_mode='max'))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def best_step(self) -> int | None:
    """The step with the highest validation accuracy (None: none validated)."""
    return self.manager.best_step()

  def all_steps(self) -> list[int]:
    return list(self.manager.all_steps())

  def _disk_full(self, step: int) -> WorkdirError:
    return WorkdirError(
        f'the disk is full: checkpoint {step} could not be written to '
        f'{self.directory}. The checkpoints before it are intact. Fix: free '
        'space there and run the same command again to resume.')

  def save(self, step: int, state, metrics: dict | None = None) -> None:
    """Saves a host state (numpy arrays): its checksums first, then the
    checkpoint (asynchronously: training goes on while it is written)."""
    primary = processes.is_primary()
    try:
      if primary:
        os.makedirs(self._checksums, exist_ok=True)
        write_json_atomic(self._checksum_path(step), array_checksums(state))
      self.manager.save(step, args=ocp.args.StandardSave(state),
                        metrics=metrics, force=True)
    except Exception as e:
      if is_disk_full(e):
        raise self._disk_full(step) from None
      raise
    if primary:
      self._forget_checksums_of_deleted_steps(keep=step)

  def _checksum_path(self, step: int) -> str:
    return os.path.join(self._checksums, f'{step}.json')

  def _forget_checksums_of_deleted_steps(self, keep: int) -> None:
    steps = set(self.manager.all_steps()) | {keep}
    for name in os.listdir(self._checksums):
      stem = name.split('.')[0]
      if stem.isdigit() and int(stem) not in steps:
        os.remove(os.path.join(self._checksums, name))

  def _check_files(self, step: int) -> None:
    """The files every checkpoint has, looked for before Orbax reads it (on
    a missing one Orbax fails too, but with pages of asyncio tracebacks)."""
    item = os.path.join(self.directory, str(step), 'default')
    missing = [name for name in ('_METADATA', 'manifest.ocdbt', 'd')
               if not os.path.exists(os.path.join(item, name))]
    if missing or not os.listdir(os.path.join(item, 'd')):
      raise DamagedCheckpoint(f'files missing from {item}: '
                              f'{missing or ["d/*"]}')

  def _check_structure(self, step: int, target, partial: bool) -> None:
    """Tells a checkpoint of another training state (a config mismatch,
    not damage) from a damaged one, before restoring."""
    # The item's handler reads the item's own metadata; a Checkpointer would
    # also look for a step-level file inside the item and warn that it is
    # missing (the manager keeps that file one level up).
    handler = ocp.PyTreeCheckpointHandler()
    try:
      saved = handler.metadata(
          epath.Path(self.directory) / str(step) / 'default').tree
      saved = {leaf.name: tuple(leaf.shape)
               for leaf in jax.tree_util.tree_leaves(saved)}
    except Exception as e:  # Unreadable metadata: the checkpoint is damaged.
      raise DamagedCheckpoint(f'its metadata cannot be read: {_first_line(e)}')
    finally:
      handler.close()
    wanted = {_leaf_name(path): tuple(np.shape(leaf)) for path, leaf in
              jax.tree_util.tree_flatten_with_path(target)[0]}
    missing = sorted(set(wanted) - set(saved))
    extra = [] if partial else sorted(set(saved) - set(wanted))
    reshaped = sorted(n for n in set(wanted) & set(saved)
                      if wanted[n] != saved[n])
    if missing or extra or reshaped:
      raise WorkdirError(
          f'checkpoint {step} in {self.directory} holds a different training '
          f'state than this config makes (missing: {missing[:3]}, '
          f'unexpected: {extra[:3]}, other shapes: {reshaped[:3]}); e.g. '
          'weight_decay or ema_decay changed. Fix: resume with the config '
          'in the workdir\'s config.json, or use a new --workdir.')

  def _verify(self, step: int, restored) -> None:
    path = self._checksum_path(step)
    if not os.path.exists(path):
      print(f'warning: checkpoint {step} has no recorded checksums (written '
            'by an older flaxdil); restored unverified.', flush=True)
      return
    try:
      recorded = read_json(path, f'the checksums of checkpoint {step}')
    except WorkdirError as e:  # Damaged like the checkpoint it vouches for.
      raise DamagedCheckpoint(str(e)) from None
    for name, checksum in array_checksums(restored).items():
      if recorded.get(name) != checksum:
        raise DamagedCheckpoint(f'array {name} differs from what was saved')

  def restore(self, step: int, target, partial: bool = False):
    """Restores `step` into the structure, shapes and dtypes of `target`,
    verified against the checksums recorded when it was saved.

    partial: target may name a subset of what was saved (e.g. no optimizer
    state, to evaluate without knowing the training optimizer).
    Raises DamagedCheckpoint where the checkpoint cannot be read back as
    saved, WorkdirError where it holds another training state.
    """
    if step not in self.manager.all_steps():
      raise WorkdirError(
          f'no checkpoint for step {step} in {self.directory}; it holds steps '
          f'{self.all_steps()}.')
    self._check_files(step)
    self._check_structure(step, target, partial)
    try:
      if partial:
        restored = self.manager.restore(
            step, args=ocp.args.PyTreeRestore(target, partial_restore=True))
      else:
        restored = self.manager.restore(step,
                                        args=ocp.args.StandardRestore(target))
    except Exception as e:
      raise DamagedCheckpoint(_first_line(e)) from None
    self._verify(step, restored)
    return restored

  def restore_latest_intact(self, target):
    """(state, step) of the newest checkpoint that restores intact, moving
    damaged newer ones aside with a warning; (None, None) where there is
    none at all."""
    steps = sorted(self.manager.all_steps(), reverse=True)
    for step in steps:
      try:
        return self.restore(step, target), step
      except DamagedCheckpoint as e:
        moved = self._move_aside(step)
        print(f'warning: checkpoint {step} is damaged ({e}); moved to '
              f'{moved}; trying the next older one.', flush=True)
    if steps:
      raise WorkdirError(
          f'every checkpoint in {self.directory} is damaged (moved to '
          f'{os.path.join(self.workdir, "damaged_checkpoints")}). Fix: start '
          'over in a new --workdir (or remove checkpoints/ to restart here).')
    return None, None

  def _move_aside(self, step: int) -> str:
    """Every process found `step` damaged (the same files); process 0 moves
    it while the others wait, then all forget it."""
    aside = os.path.join(self.workdir, 'damaged_checkpoints',
                         f'{step}-{time.strftime("%Y%m%d-%H%M%S")}')
    processes.barrier(f'damaged-{step}-found')
    if processes.is_primary():
      os.makedirs(os.path.dirname(aside), exist_ok=True)
      shutil.move(os.path.join(self.directory, str(step)), aside)
      if os.path.exists(self._checksum_path(step)):
        shutil.move(self._checksum_path(step),
                    os.path.join(aside, 'checksums.json'))
    processes.barrier(f'damaged-{step}-moved')
    self.manager.reload()
    return aside

  def wait(self) -> None:
    """Blocks until the last save is on disk."""
    try:
      self.manager.wait_until_finished()
    except Exception as e:
      if is_disk_full(e):
        raise self._disk_full(self.manager.latest_step()) from None
      raise

  def close(self) -> None:
    try:
      self.wait()
    finally:
      self.manager.close()


class TrainSeconds:
  """Training seconds of all sessions at each checkpoint, so that the time
  of a resumed run counts every session, each up to the checkpoint that the
  next one resumed from."""

  def __init__(self, workdir: str):
    """Reads the record, if any (before anything is written: a damaged
    file is one clear error)."""
    self._path = os.path.join(workdir, 'train_seconds.json')
    self._at = read_json(self._path,
                         'the training time at each checkpoint') or {}
    self.earlier = 0.0
    self.start_session()

  def resume_from(self, step: int | None) -> None:
    """Continues from the checkpoint of `step` (None: a new run)."""
    self._at = {k: v for k, v in self._at.items()
                if step is not None and int(k) <= step}
    self.earlier = self._at.get(str(step), 0.0)

  def start_session(self) -> None:
    self._session_start = time.monotonic()

  def total(self) -> float:
    """Seconds of the sessions before this one, and of this one so far."""
    return self.earlier + time.monotonic() - self._session_start

  def record(self, step: int, kept_steps) -> None:
    """At a checkpoint of `step`; forgets steps no longer kept."""
    self._at[str(step)] = self.total()
    kept = set(kept_steps) | {step}
    self._at = {k: v for k, v in self._at.items() if int(k) in kept}
    if processes.is_primary():
      write_json_atomic(self._path, self._at)


def _first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f'{type(error).__name__}: {text[0][:300] if text else ""}'
