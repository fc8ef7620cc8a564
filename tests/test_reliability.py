"""Training that survives: bad input, a second run, damaged checkpoints,
divergence, a full disk, resume hygiene, signals and kill -9."""

import errno
import functools
import json
import math
import os
import shutil
import signal
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import ROOT, SHARED_TFDS
from flaxdil.errors import ConfigError, TrainingDiverged, WorkdirError
from flaxdil.experiments import faults
from flaxdil.training import devices, evaluation, loop, steps
from flaxdil.config import rules
from flaxdil.training.metrics_log import MetricsWriter
from flaxdil.workdir import checkpoints, files
from flaxdil.workdir.lock import WorkdirLock
from test_steps import INFO, fake_split, make_state


@pytest.mark.parametrize('field,value,allowed', [
    ('batch_size', 0, 'an integer >= 1'),
    ('batch_size', -16, 'an integer >= 1'),
    ('eval_batch_size', 0, 'an integer >= 1'),
    ('log_every_steps', 0, 'an integer >= 1'),
    ('crop_padding', -1, 'an integer >= 0'),
    ('learning_rate', -1.0, 'a number > 0'),
    ('learning_rate', math.inf, 'a number > 0'),
    ('warmup_epochs', -1.0, 'a number >= 0'),
    ('label_smoothing', 5.0, 'a number in [0, 1)'),
    ('keep_checkpoints', 0, 'an integer >= 1'),
    ('ema_decay', 1.0, 'a number in [0, 1)'),
    ('checkpoint_every_minutes', -1.0, 'minutes >= 0'),
])
def test_a_field_out_of_range_is_refused_before_the_workdir_exists(
    tiny_config, tmp_path, field, value, allowed):
  tiny_config[field] = value
  with pytest.raises(ConfigError) as error:
    loop.train_and_evaluate(tiny_config, str(tmp_path / 'run'))
  assert f'config.{field}={value!r} is not allowed: use ' in str(error.value)
  assert allowed in str(error.value)
  assert not (tmp_path / 'run').exists()


def test_every_json_file_is_strict(tmp_path):
  path = str(tmp_path / 'x.json')
  files.write_json_atomic(path, {'loss': math.nan, 'x': [math.inf, 1.5]})

  def refuse(name):
    raise ValueError(name)

  assert json.loads(open(path).read(), parse_constant=refuse) == {
      'loss': None, 'x': [None, 1.5]}
  writer = MetricsWriter(str(tmp_path))
  writer.write(1, 'train', {'loss': math.nan, 'accuracy': 0.5})
  writer.close()
  line = open(tmp_path / 'metrics.jsonl').read()
  assert json.loads(line, parse_constant=refuse)['loss'] is None


def test_a_resumed_log_drops_what_came_after_the_checkpoint(tmp_path):
  writer = MetricsWriter(str(tmp_path))
  for step in (1, 2, 3, 4, 5):
    writer.write(step, 'train', {'loss': float(step)})
  writer.close()
  with open(tmp_path / 'metrics.jsonl', 'a') as f:
    f.write('{"step": 6, "spl')  # Cut short by a kill.
  writer = MetricsWriter(str(tmp_path), resume_step=3)
  writer.write(4, 'train', {'loss': 40.0})
  writer.close()
  records = [json.loads(l) for l in open(tmp_path / 'metrics.jsonl')]
  assert [(r['step'], r['loss']) for r in records] == [
      (1, 1.0), (2, 2.0), (3, 3.0), (4, 40.0)]


def test_a_second_run_on_a_workdir_is_refused_at_once(tiny_config, tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'keep.txt').write_text('mine')
  with WorkdirLock(str(workdir)):
    with pytest.raises(WorkdirError, match=rf'in use by another run \(PID '
                       rf'{os.getpid()} on host '):
      loop.train_and_evaluate(tiny_config, str(workdir))
  assert sorted(os.listdir(workdir)) == ['.lock', 'keep.txt']
  WorkdirLock(str(workdir)).acquire().release()  # Free again.


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
  holder = subprocess.Popen(
      [sys.executable, '-c', 'import os, signal, sys, time; '
       f'sys.path.insert(0, {str(ROOT)!r}); '
       'from flaxdil.workdir.lock import WorkdirLock; '
       f'WorkdirLock({str(tmp_path)!r}).acquire(); print("held", flush=True); '
       'time.sleep(60)'], stdout=subprocess.PIPE, text=True)
  assert holder.stdout.readline().strip() == 'held'
  with pytest.raises(WorkdirError, match=f'PID {holder.pid}'):
    WorkdirLock(str(tmp_path)).acquire()
  holder.kill()
  holder.wait(10)
  WorkdirLock(str(tmp_path)).acquire().release()


def _saved_store(tiny_config, workdir, steps_to_save=(1, 2, 3)):
  store = checkpoints.CheckpointStore(str(workdir), keep=10)
  state = make_state(tiny_config)
  for step in steps_to_save:
    store.save(step, jax.device_get(state.replace(
        step=np.int32(step),
        params=jax.tree_util.tree_map(lambda p: p + step, state.params))))
  store.wait()
  return store, state


def _rewrite_with_other_values(workdir, step, state):
  """Damage the storage layer cannot notice: a well-formed checkpoint of
  other values in place of the saved one."""
  default = os.path.join(workdir, 'checkpoints', str(step), 'default')
  shutil.rmtree(default)
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(default, jax.device_get(state.replace(step=np.int32(step))))
    checkpointer.wait_until_finished()


def test_resume_falls_back_to_the_newest_intact_checkpoint(
    tiny_config, tmp_path, capsys):
  store, state = _saved_store(tiny_config, tmp_path)
  os.remove(os.path.join(tmp_path, 'checkpoints', '3', 'default',
                         'manifest.ocdbt'))
  _rewrite_with_other_values(tmp_path, 2, state)
  restored, step = store.restore_latest_intact(state)
  assert step == 1 and int(restored.step) == 1
  np.testing.assert_array_equal(
      restored.params['classifier']['bias'], state.params['classifier']['bias'] + 1)
  out = capsys.readouterr().out
  assert 'checkpoint 3 is damaged' in out
  assert 'checkpoint 2 is damaged (array params.block1.bn.bias differs' in out
  assert store.all_steps() == [1]
  assert sorted(os.listdir(tmp_path / 'damaged_checkpoints'))[0].startswith('2-')
  # New checkpoints can take the moved-aside steps' numbers again.
  store.save(2, jax.device_get(state.replace(step=np.int32(2))))
  store.wait()
  assert store.all_steps() == [1, 2]
  for step in (1, 2):
    _rewrite_with_other_values(tmp_path, step, state.replace(
        params=jax.tree_util.tree_map(lambda p: p - 7, state.params)))
  with pytest.raises(WorkdirError, match='every checkpoint in .* is damaged'):
    store.restore_latest_intact(state)
  store.close()


def test_a_checkpoint_of_another_training_state_is_a_config_error_not_damage(
    tiny_config, tmp_path):
  store, _ = _saved_store(tiny_config, tmp_path, (1,))
  tiny_config.weight_decay = 0.1  # AdamW's state has another structure.
  with pytest.raises(WorkdirError, match='holds a different training state'):
    store.restore_latest_intact(make_state(tiny_config))
  assert store.all_steps() == [1]  # Not moved aside.
  store.close()


def test_evaluating_a_damaged_checkpoint_is_a_clear_error(tiny_config, tmp_path):
  store, state = _saved_store(tiny_config, tmp_path, (1, 2))
  store.close()
  _rewrite_with_other_values(tmp_path, 2, state)
  info = rules.check_run(tiny_config)
  with pytest.raises(WorkdirError, match=r'checkpoint 2 .* is damaged .*'
                     r'--checkpoint_step \(steps held: \[1, 2\]\)'):
    evaluation.restore_checkpoint(tiny_config, info, str(tmp_path), 2)
  restored, step = evaluation.restore_checkpoint(tiny_config, info,
                                                 str(tmp_path), 1)
  assert step == 1


def test_a_full_disk_is_a_clear_error_and_keeps_earlier_checkpoints(
    tiny_config, tmp_path, monkeypatch):
  store, state = _saved_store(tiny_config, tmp_path, (1,))

  def full(*args, **kwargs):
    raise OSError(errno.ENOSPC, 'No space left on device')

  monkeypatch.setattr(store.manager, 'save', full)
  with pytest.raises(WorkdirError, match='the disk is full: checkpoint 2'):
    store.save(2, jax.device_get(state.replace(step=np.int32(2))))
  monkeypatch.undo()
  restored, step = store.restore_latest_intact(state)
  assert step == 1
  store.close()


def test_nonfinite_steps_are_skipped_when_asked(tiny_config):
  tiny_config.skip_nonfinite_steps = True
  tiny_config.crop_padding, tiny_config.random_flip = 0, False
  placed = jax.local_devices()[:1]
  images, labels = fake_split(16)
  batch = devices.shard({'image': images[None], 'label': labels[None]}, placed)
  keys = devices.replicate(jax.random.key(0), placed)
  huge = lambda step: 1e38  # One step makes the weights ~1e38: the next overflows.
  step = jax.pmap(functools.partial(
      steps.train_step, config=tiny_config, info=INFO),
      axis_name=steps.AXIS, devices=placed)
  state = devices.replicate(make_state(tiny_config, huge), placed)
  state, first = step(state, batch, keys)
  before = devices.unreplicate(state)
  state, second = step(state, batch, keys)
  after = devices.unreplicate(state)
  assert float(first['nonfinite'][0]) == 0 and float(second['nonfinite'][0]) == 1
  assert int(after.step) == 2
  for want, got in zip(jax.tree_util.tree_leaves((before.params, before.opt_state)),
                       jax.tree_util.tree_leaves((after.params, after.opt_state))):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


@pytest.mark.slow
def test_divergence_stops_training_and_saves_nothing_nonfinite(
    tiny_config, tmp_path, mock_cifar):
  tiny_config.learning_rate = 1e38
  tiny_config.checkpoint_every_steps = 1
  workdir = str(tmp_path / 'run')
  with pytest.raises(TrainingDiverged, match=r'diverged at step 2: the loss '
                     r'\(.*\) or a gradient is not finite.*last good '
                     r'checkpoint is step 1'):
    loop.train_and_evaluate(tiny_config, workdir)
  store = checkpoints.CheckpointStore(workdir, create=False)
  assert store.all_steps() == [1]
  store.close()
  assert not os.path.exists(os.path.join(workdir, 'summary.json'))
  # Skipping instead: the run ends, its metrics count the skipped steps.
  tiny_config.skip_nonfinite_steps = True
  summary = loop.train_and_evaluate(tiny_config, str(tmp_path / 'skip'))
  records = [json.loads(l) for l in open(tmp_path / 'skip' / 'metrics.jsonl')]
  assert sum(r.get('nonfinite_steps', 0) for r in records) == 3  # Steps 2-4.
  assert summary['final_step'] == 4


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED_TFDS / 'cifar10').is_dir(),
                    reason='real CIFAR-10 not in ../shared')
def test_signals_and_kill_9_leave_the_result_bitwise_unchanged(tmp_path):
  """bin/faults.py's check, short: SIGTERM, kill -9 during a save, and
  SIGTERM then SIGINT during the save it causes, each resumed, end bitwise
  where an uninterrupted run ends."""
  result = faults.run(
      # Slices of the splits: each start decodes 2,500 images, not 60,000.
      ['--config=configs/tiny.py', f'--config.data_dir={SHARED_TFDS}',
       '--config.train_split=train[:2000]', '--config.test_split=test[:500]',
       '--config.num_train_steps=400', '--config.checkpoint_every_steps=20',
       '--config.log_every_steps=1', '--config.eval_every_steps=400'],
      str(tmp_path), interruptions=3, max_delay=1.0,
      kinds=('sigterm', 'kill9_save', 'double'), timeout=300)
  assert result['interruptions'] == 3, result
  assert result['resumes_failed'] == 0, result['events']
  assert result['survived'] == 3
  assert result['steps_lost_per_interruption']['sigterm_or_sigint_max'] == 0
  assert result['bitwise_equal'] and result['max_abs_param_difference'] == 0


@pytest.mark.slow
def test_checkpoints_are_also_saved_by_time(tiny_config, tmp_path, mock_cifar):
  tiny_config.eval_every_steps = 4  # Validation (and its checkpoint) at 4 only.
  tiny_config.keep_checkpoints = 10
  tiny_config.checkpoint_every_minutes = 1e-9  # Due after every step.
  loop.train_and_evaluate(tiny_config, str(tmp_path / 'on'))
  store = checkpoints.CheckpointStore(str(tmp_path / 'on'), create=False)
  assert store.all_steps() == [1, 2, 3, 4]
  store.close()
  tiny_config.checkpoint_every_minutes = 0.0  # Off: only the validation's.
  loop.train_and_evaluate(tiny_config, str(tmp_path / 'off'))
  store = checkpoints.CheckpointStore(str(tmp_path / 'off'), create=False)
  assert store.all_steps() == [4]
  store.close()


@pytest.mark.slow
def test_a_full_disk_during_training_is_a_clear_error_and_resumable(
    tiny_config, tmp_path, mock_cifar, monkeypatch):
  workdir = str(tmp_path / 'run')
  write = MetricsWriter.write

  def full_after_step_2(self, step, split, metrics):
    if step > 2:
      raise OSError(errno.ENOSPC, 'No space left on device')
    return write(self, step, split, metrics)

  monkeypatch.setattr(MetricsWriter, 'write', full_after_step_2)
  with pytest.raises(WorkdirError, match='is full .* checkpoints already '
                     'written are intact'):
    loop.train_and_evaluate(tiny_config, workdir)
  monkeypatch.undo()  # Space freed.
  summary = loop.train_and_evaluate(tiny_config, workdir)
  assert summary['final_step'] == 4


def test_a_signal_says_what_still_happens_before_the_run_stops(capsys):
  """The dispatch in flight still finishes (and may print its progress
  line) before the checkpoint: the line says so, not 'this step'."""
  from flaxdil.distributed import preemption
  with preemption.Watch() as watch:
    os.kill(os.getpid(), signal.SIGTERM)
    assert watch.requested(0) and watch.cause() == 'SIGTERM'
  err = capsys.readouterr().err
  assert ('Received SIGTERM: the steps already dispatched finish (their '
          'progress line may still print), then a checkpoint is saved') in err
  assert 'finishing this step' not in err
