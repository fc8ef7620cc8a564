"""The workdir's small files: strict JSON, written atomically, read back
with one clear error, and a full disk recognised.

Every JSON file flaxdil writes is strict (NaN and Infinity become null) and
replaced atomically: a reader, or a run killed mid-write, sees the old file
or the new, never half of one.
"""

from __future__ import annotations

import errno
import json
import math
import os
import tempfile
from typing import Any

from flaxdil.errors import WorkdirError


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


def write_bytes_atomic(path: str, data: bytes) -> None:
  """Writes a file so that readers see the old one or the new, never half."""
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-',
                             suffix=os.path.splitext(path)[1])
  try:
    with os.fdopen(fd, 'wb') as f:
      f.write(data)
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def write_text_atomic(path: str, text: str) -> None:
  """write_bytes_atomic for text (UTF-8)."""
  write_bytes_atomic(path, text.encode())


def write_json_atomic(path: str, obj: Any) -> None:
  """Writes strict JSON, atomically."""
  write_text_atomic(path, json.dumps(strict_json(obj), indent=2,
                                     sort_keys=True, allow_nan=False) + '\n')


def read_json(path: str, holds: str,
              fix: str = 'repair or restore it, or move it aside') -> Any:
  """The JSON document in `path`, or None where there is no such file.

  A file that is not valid JSON is a WorkdirError naming it, the position,
  what it holds and the fix, e.g. holds='the config that created this
  workdir'; nothing is changed.
  """
  try:
    with open(path) as f:
      return json.load(f)
  except FileNotFoundError:
    return None
  except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError included.
    where = (f'line {e.lineno}, column {e.colno}: {e.msg}'
             if isinstance(e, json.JSONDecodeError) else str(e)[:200])
    raise WorkdirError(f'{path} is not valid JSON ({where}); it holds '
                       f'{holds}. Fix: {fix}. Nothing was changed.') from None


def is_disk_full(error: BaseException) -> bool:
  """Whether error, or one it was raised from, is ENOSPC or EDQUOT."""
  while error is not None:
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC,
                                                     errno.EDQUOT):
      return True
    error = error.__cause__ or error.__context__
  return False
