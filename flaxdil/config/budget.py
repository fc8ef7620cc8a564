"""A run's budget in steps: every step-count field, sentinels resolved in
one place (big_vision's `u.steps` is the model), and the learning-rate
schedule over those steps.

  num_train_steps         -1: num_epochs × steps per epoch
  warmup_epochs           × steps per epoch, at most the whole run
  eval_every_steps        -1: once per epoch; never without a hold-out
                          (validation_size=0: nothing is selected, the
                          final weights are the result)
  checkpoint_every_steps  -1: at every evaluation (once per epoch without
                          a hold-out), and always at the last step
  early_epochs       × steps per epoch, at most the whole run
"""

from __future__ import annotations

import dataclasses
import math

import ml_collections
import optax
from absl import logging

# config.lr_schedule: what follows the warm-up, from the peak rate over
# `steps` steps (the rule in flaxdil.config.rules takes its names here).
SCHEDULES = {
    'cosine': lambda peak, steps: optax.cosine_decay_schedule(peak, steps),
    'constant': lambda peak, steps: optax.constant_schedule(peak),
    # airbench's shape: a straight line from the peak to 0 at the last step.
    'linear': lambda peak, steps: optax.linear_schedule(peak, 0.0, steps),
}


@dataclasses.dataclass(frozen=True)
class Budget:
  """A run's step counts, every sentinel resolved."""
  epoch_steps: int        # Full global batches per epoch.
  total_steps: int
  warmup_steps: int
  eval_every: int         # 0: never (no hold-out).
  checkpoint_every: int
  log_every: int
  early_steps: int   # Steps on config.early_size crops; 0: none.


def budget(config: ml_collections.ConfigDict, epoch_steps: int) -> Budget:
  """config's step counts for an epoch of `epoch_steps` steps
  (flaxdil.data.batches.steps_per_epoch)."""
  total = (config.num_train_steps if config.num_train_steps > 0
           else int(math.ceil(config.num_epochs * epoch_steps)))
  per_epoch = (config.eval_every_steps if config.eval_every_steps > 0
               else epoch_steps)
  eval_every = per_epoch if config.validation_size else 0
  return Budget(
      epoch_steps=epoch_steps, total_steps=total,
      warmup_steps=min(int(config.warmup_epochs * epoch_steps), total),
      eval_every=eval_every,
      checkpoint_every=(config.checkpoint_every_steps
                        if config.checkpoint_every_steps > 0 else per_epoch),
      log_every=config.log_every_steps,
      early_steps=min(int(config.early_epochs * epoch_steps), total))


def learning_rate_schedule(config: ml_collections.ConfigDict,
                           steps: Budget) -> optax.Schedule:
  """Linear warm-up to config.learning_rate, then config.lr_schedule."""
  warmup, total = steps.warmup_steps, steps.total_steps
  if warmup and warmup == total:
    # Short budgeted runs hit this silently: the rate would rise all run long.
    logging.warning(
        'config.warmup_epochs=%s covers all %d training steps, so the '
        'learning rate only rises and never decays; lower warmup_epochs.',
        config.warmup_epochs, total)
  peak = config.learning_rate
  after = SCHEDULES[config.lr_schedule](peak, max(total - warmup, 1))
  if not warmup:
    return after
  return optax.join_schedules(
      [optax.linear_schedule(0.0, peak, warmup), after], [warmup])
