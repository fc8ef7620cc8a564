"""The optimizer a config names: Adam (AdamW with weight decay), or SGD
with momentum (Nesterov's by default), each optionally inside Lookahead,
and with config.freeze_backbone updating the classifier only.

Weight decay touches kernels only (not BatchNorm scales or biases): every
kernel but the classifier's feeds a BatchNorm, so decay there sets the
effective step size, while decaying BatchNorm's own scale would fight it.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections
import optax

# config.optimizer's values.
OPTIMIZERS = ('adam', 'sgd')

# The top-level module every network's logits come from
# (flaxdil.models.layers.classifier_head): what a frozen backbone trains,
# and what fine-tuning may re-initialise (flaxdil.training.init_from).
HEAD = 'classifier'


def create(config: ml_collections.ConfigDict,
           learning_rate_fn: optax.Schedule) -> optax.GradientTransformation:
  """config's optimizer, on learning_rate_fn's schedule."""
  if config.optimizer == 'sgd':
    # Weight decay as PyTorch's SGD applies it: L2 added to the gradient,
    # before the momentum.
    tx = optax.chain(
        *([optax.add_decayed_weights(config.weight_decay, _kernels)]
          if config.weight_decay else []),
        optax.sgd(learning_rate_fn, momentum=config.sgd_momentum,
                  nesterov=config.nesterov))
  elif config.weight_decay:
    # Decoupled: each step shrinks the kernels by rate × decay.
    tx = optax.adamw(learning_rate_fn, b2=config.adam_b2,
                     weight_decay=config.weight_decay, mask=_kernels)
  else:
    tx = optax.adam(learning_rate_fn, b2=config.adam_b2)
  if config.lookahead_steps:
    tx = lookahead(tx, config.lookahead_steps, config.lookahead_alpha)
  if config.freeze_backbone:
    tx = optax.multi_transform({'train': tx, 'freeze': optax.set_to_zero()},
                               _head_only)
  return tx


class LookaheadState(NamedTuple):
  inner: Any
  slow: Any         # The slow weights, a copy of the parameters' tree.
  count: jax.Array  # Steps taken.


def lookahead(inner: optax.GradientTransformation, sync_period: int,
              alpha: float) -> optax.GradientTransformation:
  """Lookahead (Zhang et al., 2019) around `inner`, on the parameters
  themselves: the fast weights take `inner`'s steps; every sync_period
  steps the slow weights move alpha of the way to them and the fast
  weights restart from there.

  Unlike optax.lookahead, the parameter tree stays as it is (no
  LookaheadParams), so the train state, checkpoints, EMA and export see
  one set of weights; the slow ones live in the optimizer state. At a
  sync the update is slow' − params, so params + update is the new slow
  weights up to float32 rounding of that sum (at most one ulp).
  """
  def init(params):
    return LookaheadState(inner.init(params),
                          jax.tree_util.tree_map(jnp.copy, params),
                          jnp.zeros([], jnp.int32))

  def update(updates, state, params):
    updates, inner_state = inner.update(updates, state.inner, params)
    count = state.count + 1
    sync = count % sync_period == 0
    fast = optax.apply_updates(params, updates)
    moved = jax.tree_util.tree_map(lambda s, f: s + alpha * (f - s),
                                   state.slow, fast)
    updates = jax.tree_util.tree_map(
        lambda u, m, p: jnp.where(sync, m - p, u), updates, moved, params)
    slow = jax.tree_util.tree_map(lambda m, s: jnp.where(sync, m, s),
                                  moved, state.slow)
    return updates, LookaheadState(inner_state, slow, count)

  return optax.GradientTransformation(init, update)


def _kernels(params) -> Any:
  """The decay mask: True for kernels."""
  return jax.tree_util.tree_map_with_path(
      lambda path, _: path[-1].key == 'kernel', params)


def _head_only(params) -> dict:
  """optax.multi_transform's labels: 'train' for the classifier's
  parameters, 'freeze' for every other."""
  return {name: jax.tree_util.tree_map(
      lambda _: 'train' if name == HEAD else 'freeze', tree)
          for name, tree in params.items()}
