"""What a run computes, read from its recorded config: the key that runs
of one setting share (seeds and bookkeeping aside) and the input size its
network saw. Shared by the report's tables and its plots."""

from __future__ import annotations

import json

# Fields that say where a run's files are or how often it logs and saves,
# not what it computes: runs that differ only in these (and the seed) are
# the same experiment.
_BOOKKEEPING = ('seed', 'data_dir', 'manual_dir', 'log_every_steps',
                'checkpoint_every_steps', 'checkpoint_every_minutes',
                'keep_checkpoints', 'eval_batch_size', 'conv_impl')


def setting(config: dict, leave_out=()) -> str:
  """What a run computes, as a key: its config without bookkeeping, the
  seed, and the fields in leave_out."""
  return json.dumps({k: v for k, v in config.items()
                     if k not in _BOOKKEEPING and k not in leave_out},
                    sort_keys=True)


def input_label(config: dict) -> str:
  """The size the run's network saw: config.image_size, or the dataset's."""
  size = config.get('image_size')
  return f'{size}×{size}' if size else 'native'
