"""Checkpoints in the workdir: atomic, verified, resumable, best kept by
validation.

Layout:
  WORKDIR/config.json             the config that created the workdir
  WORKDIR/checkpoints/N/          Orbax checkpoints (the latest K and the best)
  WORKDIR/checksums/N.json        SHA-256 of every array of checkpoint N
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

import errno
import hashlib
import json
import math
import os
import shutil
import tempfile
import time
from typing import Any

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy

from flaxdil import distributed
from flaxdil.errors import WorkdirError
from flaxdil.models import MODEL_FIELDS

BEST_METRIC = 'validation_accuracy'
# Fields that, with the model's, decide what the parameters mean.
_IDENTITY_FIELDS = MODEL_FIELDS + ('dataset',)


def strict_json(obj: Any) -> Any:
  """obj with every non-finite float replaced by None, so that it serialises
  as strict JSON (null) rather than as NaN or Infinity."""
  if isinstance(obj, float):
    return obj if math.isfinite(obj) else None
  if isinstance(obj, dict):
    return {k: strict_json(v) for k, v in obj.items()}
  if isinstance(obj, (list, tuple)):
    return [strict_json(v) for v in obj]
  return obj


def write_text_atomic(path: str, text: str) -> None:
  """Writes a file so that readers see the old one or the new, never half."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-',
                             suffix=os.path.splitext(path)[1])
  try:
    with os.fdopen(fd, 'w') as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def write_json_atomic(path: str, obj: Any) -> None:
  """Writes strict JSON, atomically."""
  write_text_atomic(path, json.dumps(strict_json(obj), indent=2,
                                     sort_keys=True, allow_nan=False) + '\n')


def _jsonable(value):
  return list(value) if isinstance(value, tuple) else value


def check_workdir_config(config: ml_collections.ConfigDict,
                         workdir: str) -> dict | None:
  """Refuses a workdir whose saved config describes a different model.

  Returns the saved config (a dict), or None where the workdir has none.
  """
  path = os.path.join(workdir, 'config.json')
  if not os.path.exists(path):
    return None
  with open(path) as f:
    saved = json.load(f)
  # A field the saved config lacks did not exist when it was written (e.g.
  # 'stem', which only baselines read): nothing to compare.
  differences = [
      f'{field}: workdir has {saved.get(field)!r}, config has '
      f'{_jsonable(config.get(field))!r}'
      for field in _IDENTITY_FIELDS
      if field in saved and _jsonable(saved[field]) != _jsonable(config.get(field))]
  # Checkpoints hold an EMA of the weights exactly when ema_decay > 0; a
  # saved config without the field predates it and kept none.
  saved_ema = saved.get('ema_decay', 0.0)
  if bool(saved_ema) != bool(config.get('ema_decay')):
    differences.append(
        f'ema_decay: workdir has {saved_ema!r}, config has '
        f'{config.get("ema_decay")!r} (an EMA is kept or not)')
  if differences:
    raise WorkdirError(
        f'workdir {workdir!r} holds a run of a different model ('
        + '; '.join(differences) + '). Fix: use a new --workdir, or pass the '
        'config that created this one (see its config.json).')
  return saved


def save_workdir_config(config: ml_collections.ConfigDict, workdir: str):
  if distributed.is_primary():
    write_json_atomic(os.path.join(workdir, 'config.json'),
                    json.loads(config.to_json_best_effort()))


def _best_metric(metrics) -> float:
  return metrics[BEST_METRIC]


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


def is_disk_full(error: BaseException) -> bool:
  """Whether error, or one it was raised from, is ENOSPC or EDQUOT."""
  while error is not None:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC,
                                                     errno.EDQUOT):
      return True
    error = error.__cause__ or error.__context__
  return False


class CheckpointStore:
  """The workdir's Orbax CheckpointManager and the policy flaxdil uses."""

  def __init__(self, workdir: str, keep: int = 3, create: bool = True):
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
    """The step with the highest validation accuracy (else the latest)."""
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
    primary = distributed.is_primary()
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
    try:
      with ocp.PyTreeCheckpointer() as checkpointer:
        saved = checkpointer.metadata(
            os.path.join(self.directory, str(step), 'default')
        ).item_metadata.tree
      saved = {leaf.name: tuple(leaf.shape)
               for leaf in jax.tree_util.tree_leaves(saved)}
    except Exception as e:  # Unreadable metadata: the checkpoint is damaged.
      raise DamagedCheckpoint(f'its metadata cannot be read: {_first_line(e)}')
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
    with open(path) as f:
      recorded = json.load(f)
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
    distributed.barrier(f'damaged-{step}-found')
    if distributed.is_primary():
      os.makedirs(os.path.dirname(aside), exist_ok=True)
      shutil.move(os.path.join(self.directory, str(step)), aside)
      if os.path.exists(self._checksum_path(step)):
        shutil.move(self._checksum_path(step),
                    os.path.join(aside, 'checksums.json'))
    distributed.barrier(f'damaged-{step}-moved')
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


def _first_line(error: BaseException) -> str:
  text = str(error).strip().splitlines()
  return f'{type(error).__name__}: {text[0][:300] if text else ""}'
