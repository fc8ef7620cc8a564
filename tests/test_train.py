"""The training loop end to end on TFDS mock data."""

import json
import os

import jax
import pytest

from flaxdil.errors import ConfigError
from flaxdil.training import evaluation, loop
from flaxdil.training.metrics_log import Progress


@pytest.mark.slow
def test_train_and_evaluate_end_to_end_on_mock_data(tiny_config, tmp_path, mock_cifar, capsys):
  workdir = str(tmp_path / 'run')
  summary = loop.train_and_evaluate(tiny_config, workdir)
  out = capsys.readouterr().out
  assert 'step 4/4' in out and 'img/s' in out and 'ETA' in out
  assert 'δ=1' in out
  assert 0.0 <= summary['test_accuracy'] <= 1.0
  state = evaluation.restore_state(tiny_config, workdir, 4).state
  assert summary['num_params'] == sum(
      x.size for x in jax.tree_util.tree_leaves(state.params))
  result = json.load(open(os.path.join(workdir, 'eval_test.json')))
  assert result['num_examples'] == 150  # 150 = 6 batches of 24 + 6: none dropped.
  assert result['accuracy'] == summary['test_accuracy']
  records = [json.loads(line) for line in open(os.path.join(workdir, 'metrics.jsonl'))]
  assert {r['split'] for r in records} == {'train', 'validation'}
  assert [r['step'] for r in records if r['split'] == 'validation'] == [2, 4]
  assert any(f.startswith('events.out.tfevents')
             for f in os.listdir(os.path.join(workdir, 'tensorboard')))
  assert json.load(open(os.path.join(workdir, 'config.json')))['dilation'] == 1
  # 150 mock examples less 64 held out, in batches of 16.
  assert summary['steps_per_epoch'] == (150 - 64) // 16

  # No hold-out (validation_size=0): nothing validated or selected, the
  # last step saved, and the final weights tested.
  tiny_config.validation_size = 0
  workdir = tmp_path / 'all'
  final = loop.train_and_evaluate(tiny_config, str(workdir))
  assert final['best_step'] == final['final_step'] == 4
  assert final['steps_per_epoch'] == 150 // 16
  assert 'the final weights' in capsys.readouterr().out
  records = [json.loads(line) for line in open(workdir / 'metrics.jsonl')]
  assert {r['split'] for r in records} == {'train'}


def test_batch_not_divisible_by_devices_is_refused(tiny_config, tmp_path, mock_cifar):
  tiny_config.batch_size = 15
  with pytest.raises(ConfigError, match='divisible by the 2 devices'):
    loop.train_and_evaluate(tiny_config, str(tmp_path / 'run'))
  assert not (tmp_path / 'run').exists()


def test_the_first_interval_of_a_session_gives_no_eta(capsys):
  # It holds the compile: one step of it after a resume read "ETA 51:45:02".
  progress = Progress(total_steps=1000, steps_per_epoch=100, batch_size=8,
                      start_step=99)
  metrics = {'loss': 1.0, 'accuracy': 0.5, 'learning_rate': 1e-3}
  lines = []
  for step in (100, 150):
    rate = progress.rate(step)
    assert rate > 0
    lines.append(progress.line(step, dict(metrics, images_per_sec=rate)))
  assert capsys.readouterr().out == ''  # Computing prints nothing.
  first, second = lines
  assert first.endswith('ETA at the next log (this interval compiled)')
  assert 'compiled' not in second and second.split('ETA ')[1][0].isdigit()
