"""Checkpoints in the workdir: atomic, resumable, best kept by validation.

Layout:
  WORKDIR/config.json      the config that created the workdir
  WORKDIR/checkpoints/N/   Orbax checkpoints (the latest K and the best one)
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import ml_collections
import orbax.checkpoint as ocp
from orbax.checkpoint.checkpoint_managers import preservation_policy

from flaxdil.errors import WorkdirError
from flaxdil.models import MODEL_FIELDS

BEST_METRIC = 'validation_accuracy'
# Fields that, with the model's, decide what the parameters mean.
_IDENTITY_FIELDS = MODEL_FIELDS + ('dataset',)


def write_json_atomic(path: str, obj: Any) -> None:
  """Writes JSON so that readers see the old file or the new, never half."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix='.json')
  try:
    with os.fdopen(fd, 'w') as f:
      json.dump(obj, f, indent=2, sort_keys=True)
      f.write('\n')
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


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
  write_json_atomic(os.path.join(workdir, 'config.json'),
                    json.loads(config.to_json_best_effort()))


def _best_metric(metrics) -> float:
  return metrics[BEST_METRIC]


class CheckpointStore:
  """The workdir's Orbax CheckpointManager and the policy flaxdil uses."""

  def __init__(self, workdir: str, keep: int = 3, create: bool = True):
    self.directory = os.path.join(os.path.abspath(workdir), 'checkpoints')
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

  def save(self, step: int, state, metrics: dict | None = None) -> None:
    self.manager.save(step, args=ocp.args.StandardSave(state),
                      metrics=metrics, force=True)

  def restore(self, step: int, target, partial: bool = False):
    """Restores `step` into the structure, shapes and dtypes of `target`.

    partial: target may name a subset of what was saved (e.g. no optimizer
    state, to evaluate without knowing the training optimizer).
    """
    if step not in self.manager.all_steps():
      raise WorkdirError(
          f'no checkpoint for step {step} in {self.directory}; it holds steps '
          f'{self.all_steps()}.')
    if partial:
      return self.manager.restore(
          step, args=ocp.args.PyTreeRestore(target, partial_restore=True))
    return self.manager.restore(step, args=ocp.args.StandardRestore(target))

  def close(self) -> None:
    self.manager.wait_until_finished()
    self.manager.close()
