"""The optimizer a config names (flaxdil.training.optimizers): Adam/AdamW
as before, SGD with Nesterov momentum and L2 on kernels, Lookahead on the
parameters themselves."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from conftest import load_config
from flaxdil.training import optimizers
from test_loop import (_arrays, _assert_bitwise_equal, _blocks_config,
                       _resumed_in_blocks)
from test_steps import trees_close

EXACT = {'rtol': 0, 'atol': 0}

LR = 0.1
# A kernel (decayed) and a BatchNorm scale (never decayed).
PARAMS = {'block': {'kernel': jnp.array([1.0, -2.0, 3.0]),
                    'scale': jnp.array([0.5, 1.5])}}


def gradient(params, step):
  """A gradient that changes from step to step: of sum((p - step)^2)."""
  return jax.tree_util.tree_map(lambda p: 2 * (p - step), params)


def trajectory(tx, steps, params=PARAMS):
  """The parameters after each of `steps` updates."""
  state, out = tx.init(params), []
  for step in range(steps):
    updates, state = tx.update(gradient(params, step), state, params)
    params = optax.apply_updates(params, updates)
    out.append(params)
  return out


def config(arg=''):
  return load_config('tiny', arg or None)


def test_adam_is_adam_and_weight_decay_is_adamw_on_kernels_only():
  trees_close(trajectory(optimizers.create(config(), lambda _: LR), 3),
              trajectory(optax.adam(LR), 3), **EXACT)
  decayed = trajectory(
      optimizers.create(config('weight_decay=0.5'), lambda _: LR), 3)
  mask = {'block': {'kernel': True, 'scale': False}}
  trees_close(decayed, trajectory(
      optax.adamw(LR, weight_decay=0.5, mask=mask), 3), **EXACT)
  # The decay moved the kernel, not the scale.
  plain = trajectory(optax.adam(LR), 3)
  assert not np.allclose(decayed[-1]['block']['kernel'],
                         plain[-1]['block']['kernel'])
  trees_close(decayed[-1]['block']['scale'], plain[-1]['block']['scale'],
              **EXACT)


def test_adam_b2_is_optax_b2_and_moves_the_weights():
  """adam_b2 reaches optax as b2 (the default, 0.999, is optax's own: the
  test above checks it against optax.adam exactly)."""
  mask = {'block': {'kernel': True, 'scale': False}}
  fast_forgetting = trajectory(optimizers.create(
      config('weight_decay=0.5,adam_b2=0.9'), lambda _: LR), 3)
  trees_close(fast_forgetting, trajectory(
      optax.adamw(LR, b2=0.9, weight_decay=0.5, mask=mask), 3), **EXACT)
  trees_close(trajectory(optimizers.create(config('adam_b2=0.9'),
                                           lambda _: LR), 3),
              trajectory(optax.adam(LR, b2=0.9), 3), **EXACT)
  default = trajectory(optimizers.create(config('weight_decay=0.5'),
                                         lambda _: LR), 3)
  assert not np.allclose(fast_forgetting[-1]['block']['kernel'],
                         default[-1]['block']['kernel'])


def test_sgd_is_nesterov_momentum_with_l2_on_kernels():
  tx = optimizers.create(
      config('optimizer=sgd,sgd_momentum=0.8,weight_decay=0.1'),
      lambda _: LR)
  # By hand: g' = g + 0.1 p (kernels); m = g' + 0.8 m; p -= LR (g' + 0.8 m).
  params, trace, want = PARAMS, None, []
  for step in range(3):
    grad = gradient(params, step)
    grad = {'block': {'kernel': grad['block']['kernel']
                      + 0.1 * params['block']['kernel'],
                      'scale': grad['block']['scale']}}
    trace = grad if trace is None else jax.tree_util.tree_map(
        lambda g, m: g + 0.8 * m, grad, trace)
    params = jax.tree_util.tree_map(lambda p, g, m: p - LR * (g + 0.8 * m),
                                    params, grad, trace)
    want.append(params)
  trees_close(trajectory(tx, 3), want, rtol=1e-6, atol=1e-7)
  heavy_ball = optimizers.create(config('optimizer=sgd,nesterov=False'),
                                 lambda _: LR)
  trees_close(trajectory(heavy_ball, 3),
              trajectory(optax.sgd(LR, momentum=0.9), 3), **EXACT)


def test_lookahead_keeps_one_parameter_tree_and_matches_optax_lookahead():
  """Between syncs the fast weights take Adam's steps; every 3 steps they
  become slow + 0.5 (fast - slow): optax.lookahead's fast weights, which
  need a LookaheadParams tree, where ours are the parameters themselves."""
  tx = optimizers.create(config('lookahead_steps=3,lookahead_alpha=0.5'),
                         lambda _: LR)
  ours = trajectory(tx, 7)
  reference = optax.lookahead(optax.adam(LR), sync_period=3,
                              slow_step_size=0.5)
  params = optax.LookaheadParams.init_synced(PARAMS)
  state = reference.init(params)
  for step in range(7):
    updates, state = reference.update(gradient(params.fast, step), state,
                                      params)
    params = optax.apply_updates(params, updates)
    assert jax.tree_util.tree_structure(ours[step]) == (
        jax.tree_util.tree_structure(PARAMS))
    trees_close(ours[step], params.fast, rtol=1e-6, atol=1e-6)
  # Lookahead moved the weights: step 3 is not Adam's step 3.
  assert not np.allclose(ours[2]['block']['kernel'],
                         trajectory(optax.adam(LR), 3)[2]['block']['kernel'])


@pytest.mark.slow
def test_sgd_with_lookahead_trains_and_resumes_exactly(tiny_config, tmp_path,
                                                       mock_cifar):
  """The slow weights and the step count live in the optimizer state, so
  the checkpoint holds them: a run cut back to step 6 (after the sync at
  5) and resumed, 4 steps a dispatch, is bitwise the uninterrupted run."""
  _blocks_config(tiny_config)
  tiny_config.optimizer, tiny_config.learning_rate = 'sgd', 0.05
  tiny_config.weight_decay, tiny_config.lookahead_steps = 5e-4, 5
  uninterrupted = {}
  resumed = _resumed_in_blocks(tiny_config, tmp_path / 'run', 6,
                               uninterrupted)
  assert sorted(uninterrupted) == [8, 9, 12, 14]
  slow = [name for name in uninterrupted[14] if 'slow' in name]
  assert slow, sorted(uninterrupted[14])
  for step, arrays in uninterrupted.items():
    _assert_bitwise_equal(_arrays(resumed, step), arrays)
