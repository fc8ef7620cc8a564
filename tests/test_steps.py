"""The pure steps under pmap: loss, devices, EMA, test-time flip, schedule."""

import functools

import jax
import numpy as np
import pytest

from conftest import load_config
from flaxdil import models
from flaxdil.config import budget
from flaxdil.data import augment, batches, source
from flaxdil.training import devices, steps

INFO = source.DatasetInfo('fake', 10, (12, 12, 3), (127.5,) * 3, (127.5,) * 3)


def make_state(config, schedule=None):
  model = models.create_model(config, INFO.num_classes, axis_name=steps.AXIS)
  return steps.create_train_state(
      config, model, jax.random.key(0), INFO.image_shape,
      schedule or (lambda step: config.learning_rate))


def fake_split(n, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (n,) + INFO.image_shape, dtype=np.uint8),
          rng.integers(0, INFO.num_classes, (n,), dtype=np.int32))


def trees_close(a, b, **tolerance):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tolerance)


def _pmapped_train_step(config, placed):
  return jax.pmap(functools.partial(
      steps.train_step, config=config, info=INFO),
      axis_name=steps.AXIS, devices=placed)


@pytest.mark.parametrize('cutout', [0, 5])
def test_two_devices_match_one(tiny_config, cutout):
  """Global batch 16 as 1×16 or 2×8: BatchNorm statistics and gradients are
  global, and data order and augmentation (cutout's squares too) depend on
  example positions only."""
  assert jax.local_device_count() >= 2, 'conftest asks XLA for 2 CPU devices'
  tiny_config.cutout = cutout
  images, labels = fake_split(40)
  order = batches.BatchOrder(jax.random.key(7), 40, tiny_config.batch_size)
  finals = []
  for placed in (jax.local_devices()[:1], jax.local_devices()[:2]):
    on = devices.Devices.of(placed)
    step = jax.pmap(functools.partial(
        steps.train_steps, config=tiny_config, info=INFO),
        axis_name=steps.AXIS, devices=placed)
    state = on.replicate(make_state(tiny_config))
    resident = on.replicate({'image': images, 'label': labels})
    key = on.replicate(jax.random.key(8))
    positions = on.local_positions(tiny_config.batch_size)
    for s in range(3):
      inputs = on.place_steps([{'index': order.indices(s)[positions]}])
      state, metrics = step(state, inputs, key, resident)
    finals.append(devices.unreplicate(state))
  one, two = finals
  trees_close(two.params, one.params, rtol=1e-4, atol=1e-5)
  trees_close(two.batch_stats, one.batch_stats, rtol=1e-4, atol=1e-5)


def test_test_time_flip_averages_the_logits_of_both_mirror_images(tiny_config):
  placed = jax.local_devices()[:1]
  images, labels = fake_split(6)
  batch = {'image': images[None], 'label': labels[None],
           'mask': np.ones((1, 6), bool)}
  state = make_state(tiny_config)
  normalized = augment.normalize(images, INFO.mean, INFO.std)
  logits = jax.jit(lambda x: state.apply_fn(
      {'params': state.params, 'batch_stats': state.batch_stats}, x,
      train=False))
  averaged = (logits(normalized) + logits(normalized[:, :, ::-1])) / 2
  want = float(np.sum(np.argmax(averaged, -1) == labels))
  step = jax.pmap(functools.partial(steps.eval_step, info=INFO,
                                    test_time_flip=True),
                  axis_name=steps.AXIS, devices=placed)
  sums = devices.unreplicate(step(devices.replicate(state, placed),
                                  devices.shard(batch, placed)))
  assert float(sums['correct']) == want
  want_loss = float(np.sum(steps.cross_entropy(averaged, labels)))
  np.testing.assert_allclose(float(sums['loss_sum']), want_loss, rtol=1e-5)


def _reference_tta_logits(state, images, flip: bool, shift: int):
  """airbench's test-time augmentation, written out in NumPy."""
  logits = jax.jit(lambda x: state.apply_fn(
      {'params': state.params, 'batch_stats': state.batch_stats}, x,
      train=False))
  views = lambda x: ((np.asarray(logits(x)) + np.asarray(logits(x[:, :, ::-1])))
                     / 2 if flip else np.asarray(logits(x)))
  x = np.asarray(augment.normalize(images, INFO.mean, INFO.std))
  padded = np.pad(x, ((0, 0), (shift, shift), (shift, shift), (0, 0)),
                  mode='reflect')
  h, w = x.shape[1:3]
  up_left = padded[:, :h, :w]
  down_right = padded[:, 2 * shift:2 * shift + h, 2 * shift:2 * shift + w]
  return views(x) / 2 + (views(up_left) + views(down_right)) / 4


@pytest.mark.parametrize('flip', [False, True])
def test_test_time_shift_adds_the_translated_views_with_airbench_weights(
    tiny_config, flip):
  images, _ = fake_split(5)
  state = make_state(tiny_config)
  tiny_config.test_time_flip, tiny_config.test_time_shift = flip, 2
  got = jax.jit(functools.partial(
      steps.predict, state, info=INFO,
      **steps.test_time_augmentation(tiny_config)))(images)
  want = _reference_tta_logits(state, images, flip, 2)
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  # Off by default: the logits of the image alone, as before.
  tiny_config.test_time_flip, tiny_config.test_time_shift = False, 0
  plain = steps.predict(state, images, info=INFO,
                        **steps.test_time_augmentation(tiny_config))
  assert np.max(np.abs(np.asarray(plain) - want)) > 1e-4


def test_cutout_reaches_the_train_step(tiny_config):
  """config.cutout changes the batch the step trains on: its loss differs,
  while the same step without cutout, run twice, gives the same loss."""
  tiny_config.crop_padding, tiny_config.random_flip = 0, False
  placed = jax.local_devices()[:1]
  images, labels = fake_split(16)
  batch = devices.shard({'image': images[None], 'label': labels[None]}, placed)
  keys = devices.replicate(jax.random.key(0), placed)
  state = devices.replicate(make_state(tiny_config), placed)
  losses = {}
  for cutout in (0, 6, 0):
    tiny_config.cutout = cutout
    _, metrics = _pmapped_train_step(tiny_config, placed)(state, batch, keys)
    losses.setdefault(cutout, []).append(float(metrics['loss'][0]))
  assert losses[0][0] == losses[0][1] != losses[6][0]


def test_train_step_lowers_the_loss_and_averages_the_weights(tiny_config):
  tiny_config.ema_decay = 0.5
  tiny_config.crop_padding, tiny_config.random_flip = 0, False
  placed = jax.local_devices()[:1]
  images, labels = fake_split(16)
  batch = devices.shard({'image': images[None], 'label': labels[None]}, placed)
  keys = devices.replicate(jax.random.key(0), placed)
  schedule = lambda step: 1e-2
  step = _pmapped_train_step(tiny_config, placed)
  state = make_state(tiny_config, schedule)
  trees_close(state.ema['params'], state.params, rtol=0, atol=0)
  states, losses = [state], []
  for _ in range(20):
    state, metrics = step(devices.replicate(states[-1], placed), batch, keys)
    states.append(devices.unreplicate(state))
    losses.append(float(metrics['loss'][0]))
  assert losses[-1] < 0.8 * losses[0], losses
  assert int(states[-1].step) == 20
  # Step t's decay ramps as min(0.5, (1 + t) / (10 + t)): 0.1, 0.18, 0.25.
  for t, decay in enumerate([0.1, 2 / 11, 0.25]):
    before, after = states[t], states[t + 1]
    want = jax.tree_util.tree_map(
        lambda average, new: decay * average + (1 - decay) * new, before.ema,
        {'params': after.params, 'batch_stats': after.batch_stats})
    trees_close(after.ema, want, rtol=1e-6, atol=1e-7)
  assert not np.allclose(states[-1].ema['params']['classifier']['kernel'],
                         states[-1].params['classifier']['kernel'])


def test_schedule_warms_up_then_decays_and_warns_when_warmup_is_the_whole_run(
    tiny_config, caplog):
  tiny_config.learning_rate, tiny_config.lr_schedule = 1e-3, 'cosine'
  tiny_config.warmup_epochs = 1
  schedule = budget.learning_rate_schedule(
      tiny_config, _budget(tiny_config, epoch_steps=10, total_steps=100))
  assert float(schedule(0)) == 0.0
  assert float(schedule(10)) == pytest.approx(1e-3)
  assert float(schedule(100)) == pytest.approx(0.0, abs=1e-9)
  assert 'never decays' not in caplog.text
  # A budgeted run shorter than its warm-up would only ever raise the rate.
  budget.learning_rate_schedule(
      tiny_config, _budget(tiny_config, epoch_steps=10, total_steps=8))
  assert 'covers all 8 training steps' in caplog.text


def test_linear_schedule_falls_in_a_straight_line_to_zero(tiny_config):
  tiny_config.learning_rate, tiny_config.lr_schedule = 1e-3, 'linear'
  tiny_config.warmup_epochs = 1
  schedule = budget.learning_rate_schedule(
      tiny_config, _budget(tiny_config, epoch_steps=10, total_steps=100))
  assert float(schedule(10)) == pytest.approx(1e-3)
  # 90 steps after the warm-up: a third, half and all of the way down.
  for step, left in ((40, 2 / 3), (55, 0.5), (100, 0.0)):
    assert float(schedule(step)) == pytest.approx(left * 1e-3, abs=1e-9)


def _budget(config, epoch_steps, total_steps):
  config.num_train_steps = total_steps
  return budget.budget(config, epoch_steps)


def test_steps_per_epoch_is_the_epoch_length_of_the_batch_order():
  """The epoch length of the schedule and logs is the batch order's: it
  starts a new permutation exactly every steps_per_epoch steps."""
  epoch_steps = batches.steps_per_epoch(23, 5)
  assert epoch_steps == 4
  order = batches.BatchOrder(jax.random.key(0), 23, 5)
  first = np.concatenate([order.indices(s) for s in range(epoch_steps)])
  assert len(set(first.tolist())) == 20  # One epoch: no example twice.


def test_every_step_count_sentinel_is_resolved_in_one_place():
  config = load_config('tiny')
  config.num_train_steps, config.num_epochs = -1, 3
  config.eval_every_steps = config.checkpoint_every_steps = -1
  config.warmup_epochs, config.early_epochs = 0.5, 1.5
  counts = budget.budget(config, epoch_steps=4)
  assert (counts.total_steps, counts.eval_every, counts.checkpoint_every,
          counts.warmup_steps, counts.early_steps) == (12, 4, 4, 2, 6)
  config.eval_every_steps, config.checkpoint_every_steps = 5, -1
  assert budget.budget(config, 4).checkpoint_every == 5  # At evaluations.
  config.num_train_steps, config.warmup_epochs = 3, 10.0
  counts = budget.budget(config, 4)
  assert (counts.total_steps, counts.warmup_steps,
          counts.early_steps) == (3, 3, 3)


def test_periodic_actions_are_due_every_n_steps_and_at_the_end():
  from flaxdil.training.periodic import Clock, itstime
  due = [s for s in range(1, 11) if itstime(s, 4, total_steps=10)]
  assert due == [4, 8, 10]
  assert [s for s in range(1, 11) if itstime(s, 4, 10, last=False)] == [4, 8]
  assert [s for s in range(1, 11) if itstime(s, -1, 10)] == [10]
  assert not Clock(0.0).due(may_ask=True)        # Off.
  assert not Clock(1.0).due(may_ask=True)        # A minute has not passed.
  assert Clock(1e-9).due(may_ask=True)
