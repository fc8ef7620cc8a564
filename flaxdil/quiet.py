"""Third-party log lines that tell a flaxdil user nothing they can act on,
kept off stderr: one filter on absl's logger, which TFDS and Orbax log
through. Each caller says which lines it drops and why."""

from __future__ import annotations

import logging
from typing import Callable


class _Drop(logging.Filter):

  def __init__(self):
    super().__init__()
    self.rules: list[Callable[[str], bool]] = []

  def filter(self, record: logging.LogRecord) -> bool:
    message = record.getMessage()
    return not any(rule(message) for rule in self.rules)


_DROP = _Drop()


def drop_absl_lines(rule: Callable[[str], bool]) -> None:
  """From now on, absl log lines whose message makes rule true are dropped
  (adding the same rule twice is harmless)."""
  logger = logging.getLogger('absl')
  if _DROP not in logger.filters:
    logger.addFilter(_DROP)
  if rule not in _DROP.rules:
    _DROP.rules.append(rule)
