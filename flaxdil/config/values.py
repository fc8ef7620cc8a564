"""What a config field's value may be: the tests of flaxdil.config.defaults'
table, each a predicate on one value (flaxdil.config.rules applies them and
says what is allowed when one fails)."""

from __future__ import annotations

import math
import numbers
from typing import Callable


def is_int(value) -> bool:
  return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def is_number(value) -> bool:
  return (isinstance(value, numbers.Real) and not isinstance(value, bool)
          and math.isfinite(value))


def is_name(value) -> bool:
  return isinstance(value, str) and bool(value.strip())


def is_optional_path(value) -> bool:
  return value is None or is_name(value)


def is_bool(value) -> bool:
  return isinstance(value, bool)


def ints(value, test) -> bool:
  return (isinstance(value, (tuple, list)) and len(value) > 0
          and all(is_int(v) and test(v) for v in value))


def is_dilation(value) -> bool:
  if isinstance(value, (tuple, list)):
    return ints(value, lambda v: v >= 0)
  return is_int(value) and value >= 0


def profile_window(text: str) -> tuple[int, int] | None:
  """config.profile_steps 'A:B' → (A, B); None for '' or anything else."""
  first, sep, last = str(text).partition(':')
  try:
    window = (int(first), int(last))
  except ValueError:
    return None
  return window if sep and 0 <= window[0] < window[1] else None


def one_of(module: str, names: str) -> tuple[Callable, Callable]:
  """(test, allowed) for a field whose values are the names in
  flaxdil.MODULE.NAMES, where they are implemented: imported only when a
  config is checked, so loading a config file imports nothing heavy."""
  def vocabulary():
    import importlib
    return getattr(importlib.import_module(f'flaxdil.{module}'), names)
  return (lambda v: isinstance(v, str) and v in vocabulary(),
          lambda: f'one of {", ".join(vocabulary())}')
