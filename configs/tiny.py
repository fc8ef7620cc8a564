"""A tiny model and budget for tests and smoke runs (seconds on a CPU)."""

from flaxdil.config import defaults
from flaxdil.config.args import apply_arguments


def get_config(arg: str | None = None):
  config = defaults.get_config()
  config.widths = (8, 16, 16)
  config.strides = (1, 2, 2)
  config.dilation = 1
  config.validation_size = 64
  config.batch_size = 16
  config.eval_batch_size = 24
  config.num_epochs = 1
  config.num_train_steps = 4
  config.warmup_epochs = 0.0
  config.log_every_steps = 2
  config.eval_every_steps = 2
  return apply_arguments(config, arg)
