"""Checkpoints: exact save and restore, what is kept, resume, workdir identity."""

import json
import os
import runpy
import shutil

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import ROOT
from flaxdil.errors import WorkdirError
from flaxdil.training import evaluation, loop
from flaxdil.config import rules
from flaxdil.training import steps
from flaxdil.workdir import checkpoints, record
from test_steps import make_state, trees_close


def test_checkpoint_save_and_restore_is_exact(tiny_config, tmp_path):
  state = make_state(tiny_config)
  state = state.replace(step=state.step + 5, params=jax.tree_util.tree_map(
      lambda p: p + 0.25, state.params))
  store = checkpoints.CheckpointStore(str(tmp_path))
  store.save(5, state, {checkpoints.BEST_METRIC: 0.5})
  store.close()
  store = checkpoints.CheckpointStore(str(tmp_path), create=False)
  restored = store.restore(5, make_state(tiny_config))
  store.close()
  assert int(restored.step) == 5
  for want, got in zip(jax.tree_util.tree_leaves(state),
                       jax.tree_util.tree_leaves(restored)):
    np.testing.assert_array_equal(np.asarray(got), np.asarray(want))


def test_best_and_latest_checkpoints_are_kept(tiny_config, tmp_path):
  state = make_state(tiny_config)
  store = checkpoints.CheckpointStore(str(tmp_path), keep=2)
  for step, accuracy in [(1, 0.3), (2, 0.9), (3, 0.4), (4, 0.5), (5, 0.1)]:
    store.save(step, state.replace(step=step), {checkpoints.BEST_METRIC: accuracy})
  store.close()
  store = checkpoints.CheckpointStore(str(tmp_path), create=False)
  assert store.all_steps() == [2, 4, 5]
  assert store.best_step() == 2 and store.latest_step() == 5


def test_saves_between_validations_are_kept_without_a_warning(
    tiny_config, tmp_path, caplog):
  # Saves by steps, by time and on SIGTERM carry no metrics; Orbax warned
  # at each of them ("Requested `tracked_metric`; did not provide metrics").
  state = make_state(tiny_config)
  store = checkpoints.CheckpointStore(str(tmp_path), keep=2)
  with caplog.at_level('WARNING'):
    store.save(1, state.replace(step=1), {checkpoints.BEST_METRIC: 0.3})
    store.save(2, state.replace(step=2))
    store.save(3, state.replace(step=3))
    store.close()
  assert store.all_steps() == [1, 2, 3]
  assert store.best_step() == 1
  assert not [r.getMessage() for r in caplog.records
              if r.levelno >= 30], 'a save printed a warning'


def test_evaluation_takes_the_latest_where_none_was_validated(
    tiny_config, tmp_path, capsys):
  # A run stopped (SIGTERM) in its first epoch has only unvalidated saves.
  state = jax.device_get(make_state(tiny_config))  # As the loop saves.
  store = checkpoints.CheckpointStore(str(tmp_path))
  store.save(2, state.replace(step=2))
  store.save(3, state.replace(step=3))
  store.close()
  _, step = evaluation.restore_checkpoint(tiny_config, rules.check_run(tiny_config),
                                          str(tmp_path))
  assert step == 3
  assert 'was validated yet: using the latest, of step 3' in (
      capsys.readouterr().out)


def test_a_workdir_from_before_the_ema_is_refused_with_one(tiny_config, tmp_path):
  saved = json.loads(tiny_config.to_json_best_effort())
  del saved['ema_decay']  # Written before the field existed: no EMA kept.
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  assert record.check_identity(tiny_config, str(tmp_path)) == saved
  tiny_config.ema_decay = 0.999
  with pytest.raises(WorkdirError, match='ema_decay: workdir has 0.0'):
    record.check_identity(tiny_config, str(tmp_path))


def test_a_different_model_is_refused_before_anything_is_written(
    tiny_config, tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  record.start_session(tiny_config, str(workdir), {})
  before = (workdir / 'config.json').read_text()
  tiny_config.widths = (8, 16, 32)
  with pytest.raises(WorkdirError, match=r'widths: workdir has \[8, 16, 16\]'):
    loop.train_and_evaluate(tiny_config, str(workdir))
  assert sorted(os.listdir(workdir)) == ['config.json', 'sessions.jsonl']
  assert (workdir / 'config.json').read_text() == before


def _read_params(config, workdir, step):
  state = evaluation.restore_state(config, workdir, step).state
  return state.params


@pytest.mark.slow
def test_resumed_run_continues_identically(tiny_config, tmp_path, mock_cifar):
  tiny_config.checkpoint_every_steps = 1
  tiny_config.keep_checkpoints = 10
  workdir = str(tmp_path / 'run')
  first = loop.train_and_evaluate(tiny_config, workdir)
  uninterrupted = _read_params(tiny_config, workdir, 4)
  seconds_at_2 = json.load(open(os.path.join(workdir, 'train_seconds.json')))['2']
  # A run killed after step 3 whose checkpoint 3 was then damaged: resume
  # falls back to step 2 and logs steps 3 and 4 once more, not twice.
  shutil.rmtree(os.path.join(workdir, 'checkpoints', '4'))
  os.remove(os.path.join(workdir, 'checkpoints', '3', 'default', 'manifest.ocdbt'))
  os.remove(os.path.join(workdir, 'summary.json'))
  second = loop.train_and_evaluate(tiny_config, workdir)
  resumed = _read_params(tiny_config, workdir, 4)
  trees_close(resumed, uninterrupted, rtol=0, atol=0)
  assert second['test_accuracy'] == first['test_accuracy']
  records = [json.loads(l) for l in open(os.path.join(workdir, 'metrics.jsonl'))]
  keys = [(r['split'], r['step']) for r in records]
  assert len(keys) == len(set(keys)) and ('train', 4) in keys
  # The time of both sessions: the first's up to step 2, then the second's.
  assert second['train_wall_time_sec'] > seconds_at_2 > 0
  assert os.listdir(os.path.join(workdir, 'damaged_checkpoints'))[0].startswith('3-')


@pytest.mark.slow
def test_evaluation_restores_the_ema_weights(tiny_config, tmp_path, mock_cifar):
  tiny_config.ema_decay = 0.9
  workdir = str(tmp_path / 'run')
  loop.train_and_evaluate(tiny_config, workdir)
  store = checkpoints.CheckpointStore(workdir, create=False)
  info = rules.check_run(tiny_config)
  saved = store.restore(4, steps.abstract_train_state(
      tiny_config, steps.create_model(tiny_config, info), info.image_shape))
  store.close()
  restored = _read_params(tiny_config, workdir, 4)
  trees_close(restored, saved.ema['params'], rtol=0, atol=0)
  assert not np.allclose(restored['classifier']['kernel'], saved.params['classifier']['kernel'])
  # Evaluating it without the EMA would silently read the raw weights.
  tiny_config.ema_decay = 0.0
  with pytest.raises(WorkdirError, match='ema_decay'):
    evaluation.restore_state(tiny_config, workdir, 4)


def test_bitwise_compares_two_workdirs_at_the_steps_both_hold(tmp_path, capsys):
  """bin/bitwise.py workdirs: equal bits pass; a -0.0 where 0.0 was (equal
  under ==) fails and names the array; only the common steps are read."""
  bitwise = runpy.run_path(str(ROOT / 'bin' / 'bitwise.py'))
  tree = {'params': {'w': np.zeros((2, 3), np.float32),
                     'nan': np.full((2,), np.nan, np.float32)},
          'step': np.int32(4)}

  def save(workdir, step, tree):
    with ocp.PyTreeCheckpointer() as checkpointer:
      checkpointer.save(workdir / 'checkpoints' / str(step) / 'default', tree)

  for step in (4, 8):
    save(tmp_path / 'a', step, tree)
    save(tmp_path / 'b', step, tree)
  save(tmp_path / 'a', 12, tree)  # only one of them: not compared
  assert bitwise['compare_workdirs'](str(tmp_path / 'a'), str(tmp_path / 'b')) == 0
  out = capsys.readouterr().out
  assert 'steps both hold: 4, 8' in out and '6 of 6 arrays bitwise equal' in out

  negative_zero = {**tree, 'params': {**tree['params'],
                                      'w': -np.zeros((2, 3), np.float32)}}
  save(tmp_path / 'c', 8, negative_zero)
  assert bitwise['compare_workdirs'](str(tmp_path / 'a'), str(tmp_path / 'c')) == 1
  out = capsys.readouterr().out
  assert "differs: 8['params']['w']" in out and '2 of 3' in out
