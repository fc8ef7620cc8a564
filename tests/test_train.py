"""Training: steps, devices, checkpoints, resume and the whole loop."""

import functools
import json
import os
import shutil

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from flaxdil import checkpoints, data, models, train
from flaxdil.errors import ConfigError, WorkdirError

INFO = data.DatasetInfo('fake', 10, (12, 12, 3), (127.5,) * 3, (127.5,) * 3)


def _state(config, schedule=None):
  model = models.create_model(config, INFO.num_classes, axis_name=train.AXIS)
  return train.create_train_state(
      config, model, jax.random.key(0), INFO.image_shape,
      schedule or (lambda step: config.learning_rate))


def _fake_split(n, seed=0):
  rng = np.random.default_rng(seed)
  return (rng.integers(0, 256, (n,) + INFO.image_shape, dtype=np.uint8),
          rng.integers(0, INFO.num_classes, (n,), dtype=np.int32))


def _trees_close(a, b, **tolerance):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), **tolerance)


def test_train_step_lowers_the_loss_on_a_fixed_batch(tiny_config):
  tiny_config.crop_padding, tiny_config.random_flip = 0, False
  devices = jax.local_devices()[:1]
  images, labels = _fake_split(16)
  batch = train.shard({'image': images[None], 'label': labels[None]}, devices)
  keys = train.shard(jax.random.split(jax.random.key(0), 16)[None], devices)
  schedule = lambda step: 1e-2
  step = jax.pmap(functools.partial(
      train.train_step, config=tiny_config, info=INFO,
      learning_rate_fn=schedule), axis_name=train.AXIS, devices=devices)
  state = train.replicate(_state(tiny_config, schedule), devices)
  losses = []
  for _ in range(20):
    state, metrics = step(state, batch, keys)
    losses.append(float(metrics['loss'][0]))
  assert losses[-1] < 0.8 * losses[0], losses
  assert int(state.step[0]) == 20


def test_two_devices_match_one(tiny_config):
  """Global batch 16 as 1×16 or 2×8: BatchNorm statistics and gradients are
  global, and data order and augmentation depend on example positions only."""
  assert jax.local_device_count() >= 2, 'conftest asks XLA for 2 CPU devices'
  images, labels = _fake_split(40)
  finals = []
  for devices in (jax.local_devices()[:1], jax.local_devices()[:2]):
    step = jax.pmap(functools.partial(
        train.train_on_device_data, config=tiny_config, info=INFO,
        learning_rate_fn=lambda step: 1e-3),
        axis_name=train.AXIS, devices=devices)
    state = train.replicate(_state(tiny_config), devices)
    on_device = train.replicate({'image': images, 'label': labels}, devices)
    key = train.replicate(jax.random.key(7), devices)
    for _ in range(3):
      state, metrics = step(state, on_device, key)
    finals.append(train.unreplicate(state))
  one, two = finals
  _trees_close(two.params, one.params, rtol=1e-4, atol=1e-5)
  _trees_close(two.batch_stats, one.batch_stats, rtol=1e-4, atol=1e-5)


def test_checkpoint_save_and_restore_is_exact(tiny_config, tmp_path):
  state = _state(tiny_config)
  state = state.replace(step=state.step + 5, params=jax.tree_util.tree_map(
      lambda p: p + 0.25, state.params))
  store = checkpoints.CheckpointStore(str(tmp_path))
  store.save(5, state, {checkpoints.BEST_METRIC: 0.5})
  store.close()
  store = checkpoints.CheckpointStore(str(tmp_path), create=False)
  restored = store.restore(5, _state(tiny_config))
  store.close()
  assert int(restored.step) == 5
  for want, got in zip(jax.tree_util.tree_leaves(state),
                       jax.tree_util.tree_leaves(restored)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_best_and_latest_checkpoints_are_kept(tiny_config, tmp_path):
  state = _state(tiny_config)
  store = checkpoints.CheckpointStore(str(tmp_path), keep=2)
  for step, accuracy in [(1, 0.3), (2, 0.9), (3, 0.4), (4, 0.5), (5, 0.1)]:
    store.save(step, state.replace(step=step), {checkpoints.BEST_METRIC: accuracy})
  store.close()
  store = checkpoints.CheckpointStore(str(tmp_path), create=False)
  assert store.all_steps() == [2, 4, 5]
  assert store.best_step() == 2 and store.latest_step() == 5


@pytest.fixture
def mock_cifar():
  with tfds.testing.mock_data(num_examples=150):
    yield


def _read_params(config, workdir, step):
  state, _, _ = train.restore_state(config, workdir, step)
  return state.params


def test_train_and_evaluate_end_to_end_on_mock_data(tiny_config, tmp_path, mock_cifar, capsys):
  workdir = str(tmp_path / 'run')
  summary = train.train_and_evaluate(tiny_config, workdir)
  out = capsys.readouterr().out
  assert 'step 4/4' in out and 'img/s' in out and 'ETA' in out
  assert 0.0 <= summary['test_accuracy'] <= 1.0
  assert summary['num_params'] == sum(
      x.size for x in jax.tree_util.tree_leaves(_read_params(tiny_config, workdir, 4)))
  result = json.load(open(os.path.join(workdir, 'eval_test.json')))
  assert result['num_examples'] == 150  # 150 = 6 batches of 24 + 6: none dropped.
  assert result['accuracy'] == summary['test_accuracy']
  records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert {r['split'] for r in records} == {'train', 'validation'}
  assert [r['step'] for r in records if r['split'] == 'validation'] == [2, 4]
  assert any(f.startswith('events.out.tfevents')
             for f in os.listdir(os.path.join(workdir, 'tensorboard')))
  assert json.load(open(os.path.join(workdir, 'config.json')))['dilation'] == 1


def test_resumed_run_continues_identically(tiny_config, tmp_path, mock_cifar):
  tiny_config.checkpoint_every_steps = 1
  tiny_config.keep_checkpoints = 10
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(tiny_config, workdir)
  uninterrupted = _read_params(tiny_config, workdir, 4)
  # Simulate a run killed after step 2: its later checkpoints never existed.
  for step in (3, 4):
    shutil.rmtree(os.path.join(workdir, 'checkpoints', str(step)))
  train.train_and_evaluate(tiny_config, workdir)
  resumed = _read_params(tiny_config, workdir, 4)
  _trees_close(resumed, uninterrupted, rtol=0, atol=0)


def test_refuses_to_resume_a_different_model(tiny_config, tmp_path, mock_cifar):
  workdir = str(tmp_path / 'run')
  tiny_config.num_train_steps = 2
  train.train_and_evaluate(tiny_config, workdir)
  before = sorted(os.listdir(workdir))
  tiny_config.widths = (8, 16, 32)
  with pytest.raises(WorkdirError, match='widths'):
    train.train_and_evaluate(tiny_config, workdir)
  assert sorted(os.listdir(workdir)) == before


def test_batch_not_divisible_by_devices_is_refused(tiny_config, tmp_path, mock_cifar):
  tiny_config.batch_size = 15
  with pytest.raises(ConfigError, match='divisible by the 2 devices'):
    train.train_and_evaluate(tiny_config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_test_time_flip_averages_the_logits_of_both_mirror_images(tiny_config):
  devices = jax.local_devices()[:1]
  images, labels = _fake_split(6)
  batch = {'image': images[None], 'label': labels[None],
           'mask': np.ones((1, 6), bool)}
  state = _state(tiny_config)
  normalized = data.normalize(images, INFO.mean, INFO.std)
  logits = jax.jit(lambda x: state.apply_fn(
      {'params': state.params, 'batch_stats': state.batch_stats}, x,
      train=False))
  averaged = (logits(normalized) + logits(normalized[:, :, ::-1])) / 2
  want = float(np.sum(np.argmax(averaged, -1) == labels))
  step = jax.pmap(functools.partial(train.eval_step, info=INFO,
                                    test_time_flip=True),
                  axis_name=train.AXIS, devices=devices)
  sums = train.unreplicate(step(train.replicate(state, devices),
                                train.shard(batch, devices)))
  assert float(sums['correct']) == want
  want_loss = float(np.sum(train.cross_entropy(averaged, labels)))
  np.testing.assert_allclose(float(sums['loss_sum']), want_loss, rtol=1e-5)


def test_ema_averages_the_weights_after_each_step(tiny_config):
  tiny_config.ema_decay = 0.5
  tiny_config.crop_padding, tiny_config.random_flip = 0, False
  devices = jax.local_devices()[:1]
  images, labels = _fake_split(16)
  batch = train.shard({'image': images[None], 'label': labels[None]}, devices)
  keys = train.shard(jax.random.split(jax.random.key(0), 16)[None], devices)
  step = jax.pmap(functools.partial(
      train.train_step, config=tiny_config, info=INFO,
      learning_rate_fn=lambda step: 1e-2), axis_name=train.AXIS, devices=devices)
  state = _state(tiny_config)
  _trees_close(state.ema['params'], state.params, rtol=0, atol=0)
  states = [state]
  for _ in range(3):
    states.append(train.unreplicate(step(train.replicate(states[-1], devices),
                                         batch, keys)[0]))
  # Step t's decay ramps as min(0.5, (1 + t) / (10 + t)): 0.1, 0.18, 0.25.
  for t, decay in enumerate([0.1, 2 / 11, 0.25]):
    before, after = states[t], states[t + 1]
    want = jax.tree_util.tree_map(
        lambda average, new: decay * average + (1 - decay) * new, before.ema,
        {'params': after.params, 'batch_stats': after.batch_stats})
    _trees_close(after.ema, want, rtol=1e-6, atol=1e-7)
  assert not np.allclose(states[-1].ema['params']['classifier']['kernel'],
                         states[-1].params['classifier']['kernel'])


def test_evaluation_restores_the_ema_weights(tiny_config, tmp_path, mock_cifar):
  tiny_config.ema_decay = 0.9
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(tiny_config, workdir)
  store = checkpoints.CheckpointStore(workdir, create=False)
  saved = store.restore(4, train.Experiment(tiny_config).abstract_state())
  store.close()
  restored = _read_params(tiny_config, workdir, 4)
  _trees_close(restored, saved.ema['params'], rtol=0, atol=0)
  assert not np.allclose(restored['classifier']['kernel'], saved.params['classifier']['kernel'])
  # Evaluating it without the EMA would silently read the raw weights.
  tiny_config.ema_decay = 0.0
  with pytest.raises(WorkdirError, match='ema_decay'):
    train.restore_state(tiny_config, workdir, 4)


def test_a_workdir_from_before_the_ema_is_refused_with_one(tiny_config, tmp_path):
  saved = json.loads(tiny_config.to_json_best_effort())
  del saved['ema_decay']  # Written before the field existed: no EMA kept.
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  assert checkpoints.check_workdir_config(tiny_config, str(tmp_path)) == saved
  tiny_config.ema_decay = 0.999
  with pytest.raises(WorkdirError, match='ema_decay: workdir has 0.0'):
    checkpoints.check_workdir_config(tiny_config, str(tmp_path))


def test_schedule_warms_up_then_decays_and_warns_when_warmup_is_the_whole_run(
    tiny_config, caplog):
  tiny_config.learning_rate, tiny_config.lr_schedule = 1e-3, 'cosine'
  tiny_config.warmup_epochs = 1
  schedule = train.create_learning_rate_fn(tiny_config, epoch_steps=10,
                                           total_steps=100)
  assert float(schedule(0)) == 0.0
  assert float(schedule(10)) == pytest.approx(1e-3)
  assert float(schedule(100)) == pytest.approx(0.0, abs=1e-9)
  assert 'never decays' not in caplog.text
  # A budgeted run shorter than its warm-up would only ever raise the rate.
  train.create_learning_rate_fn(tiny_config, epoch_steps=10, total_steps=8)
  assert 'covers all 8 training steps' in caplog.text
