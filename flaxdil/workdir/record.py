"""The workdir's record of its run: the config that created it, and one line
per session saying what that session changed.

  WORKDIR/config.json     the config of the first session, never rewritten
  WORKDIR/sessions.jsonl  per session: when, where, from which step, and the
                          fields it changed (those a resume may change)

What a resume may change is a config rule (flaxdil.config.defaults: IDENTITY,
FIXED, FREE); this module applies it to the record. Everything is read and
checked before anything is written, so a refused start changes nothing.
"""

from __future__ import annotations

import json
import os
import socket
import time

import ml_collections

from flaxdil.config import defaults
from flaxdil.config.args import with_fields
from flaxdil.distributed import processes
from flaxdil.errors import WorkdirError
from flaxdil.workdir import files

CONFIG = 'config.json'
SESSIONS = 'sessions.jsonl'
# Where a run's data lives. A command that names a workdir and leaves these
# unset uses what the workdir recorded: evaluating a run must not go looking
# for (or download) its data somewhere else.
DATA_LOCATION = ('data_dir', 'manual_dir')


def _as_json(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


def read_config(workdir: str) -> dict | None:
  """The config that created the workdir (a dict), or None for none."""
  return files.read_json(
      os.path.join(workdir, CONFIG), 'the config that created this workdir',
      fix='repair or restore it, or train in a new --workdir')


def with_recorded_data_location(config: ml_collections.ConfigDict,
                                workdir: str) -> ml_collections.ConfigDict:
  """config, with each field of DATA_LOCATION that it leaves unset (None)
  taken from what workdir's run used last (its config.json, then each
  session's change); one line says so. Unchanged where nothing is
  recorded."""
  saved = read_config(workdir) if os.path.isdir(workdir) else None
  if saved is None:
    return config
  recorded = {f: saved.get(f) for f in DATA_LOCATION}
  for session in read_sessions(workdir):
    for field, change in session.get('changes', {}).items():
      if field in recorded:
        recorded[field] = change.get('now')
  taken = {f: v for f, v in recorded.items() if v and config[f] is None}
  if not taken:
    return config
  print('Using the ' + ', '.join(f'{f}={v!r}' for f, v in taken.items())
        + f' that {workdir} recorded (set --config.'
        + '/--config.'.join(taken) + ' to use another).', flush=True)
  return with_fields(config, **taken)


def _differences(saved: dict, now: dict, fields) -> dict:
  """{field: (saved, now)} for the fields whose values differ. A field the
  saved config lacks did not exist when it was written, and its default is
  what that run did (a field is added with the default that keeps every
  result as it was)."""
  default = _as_json(defaults.get_config())
  saved = {f: saved.get(f, default[f]) for f in fields}
  return {f: (saved[f], now.get(f)) for f in fields if saved[f] != now.get(f)}


def _listed(differences: dict) -> str:
  return '; '.join(f'{f}: workdir has {a!r}, config has {b!r}'
                   for f, (a, b) in differences.items())


def check_identity(config: ml_collections.ConfigDict,
                   workdir: str) -> dict | None:
  """Refuses a workdir whose record describes a different model (for
  training, evaluation, inspection and export alike). Returns the recorded
  config, or None where the workdir has none."""
  saved = read_config(workdir)
  if saved is None:
    return None
  now = _as_json(config)
  differences = _differences(saved, now, defaults.fields_with(defaults.IDENTITY))
  # Checkpoints hold an EMA of the weights exactly when ema_decay > 0; a
  # recorded config without the field predates it and kept none.
  saved_ema = saved.get('ema_decay', 0.0)
  listed = [_listed(differences)] if differences else []
  if bool(saved_ema) != bool(now['ema_decay']):
    listed.append(f'ema_decay: workdir has {saved_ema!r}, config has '
                  f'{now["ema_decay"]!r} (an EMA is kept or not)')
  if listed:
    raise WorkdirError(
        f'workdir {workdir!r} holds a run of a different model ('
        + '; '.join(listed) + '). Fix: use a new --workdir, or pass the '
        f'config that created this one (see its {CONFIG}).')
  return saved


def check_resume(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Refuses to train on in a workdir with other values of the fields that
  fix how its run trains (defaults.FIXED), listing every difference; returns
  {field: (recorded, now)} of the fields this session changes that a
  resume may change (defaults.FREE)."""
  saved = check_identity(config, workdir)
  if saved is None:
    return {}
  now = _as_json(config)
  fixed = _differences(saved, now, defaults.fields_with(defaults.FIXED))
  if fixed:
    free = ', '.join(defaults.fields_with(defaults.FREE))
    raise WorkdirError(
        f'workdir {workdir!r} trains its run with another config, which a '
        f'resume may not change ({_listed(fixed)}). Fix: resume with the '
        f'workdir\'s values (its {CONFIG}), or train in a new --workdir. A '
        f'resume may change only: {free}.')
  return _differences(saved, now, defaults.fields_with(defaults.FREE))


def start_session(config: ml_collections.ConfigDict, workdir: str,
                  changes: dict, **facts) -> None:
  """Records a training session in the locked workdir (process 0): the
  config, if this is the first, and a line of sessions.jsonl with `facts`
  (start step, devices, ...) and the `changes` check_resume returned."""
  if not processes.is_primary():
    return
  path = os.path.join(workdir, CONFIG)
  if not os.path.exists(path):
    files.write_json_atomic(path, _as_json(config))
  sessions = os.path.join(workdir, SESSIONS)
  record = {'session': len(read_sessions(workdir)) + 1,
            'time': time.strftime('%Y-%m-%d %H:%M:%S %z'),
            'host': socket.gethostname(), 'pid': os.getpid(),
            **facts,
            'changes': {f: {'recorded': a, 'now': b}
                        for f, (a, b) in changes.items()}}
  with open(sessions, 'a') as f:
    f.write(json.dumps(files.strict_json(record), allow_nan=False) + '\n')


def read_sessions(workdir: str) -> list[dict]:
  """The sessions recorded so far (a line cut short by a kill is skipped)."""
  path = os.path.join(workdir, SESSIONS)
  if not os.path.exists(path):
    return []
  sessions = []
  with open(path) as f:
    for line in f:
      try:
        sessions.append(json.loads(line))
      except ValueError:
        continue
  return sessions
