"""Every field at its default: flaxdil/config/defaults.py lists them, each
with what it means and what it allows.

Arguments, comma-separated: configs/default.py:dataset=cifar100
"""

from flaxdil.config import defaults
from flaxdil.config.args import apply_arguments


def get_config(arg: str | None = None):
  return apply_arguments(defaults.get_config(), arg)
