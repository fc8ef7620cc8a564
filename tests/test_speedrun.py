"""bin/speedrun.py: seeds timed end to end, their table and statistics."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT
from flaxdil.errors import FlaxdilError
from flaxdil.experiments import speedrun


@pytest.mark.slow
def test_speedrun_times_each_seed_and_tables_them(tmp_path, shared_tfds_dir):
  out = tmp_path / 'fast'
  main_args = ['--config=configs/tiny.py:train_split=train[:2000],'
               'test_split=test[:300],validation_size=0,num_train_steps=6',
               f'--config.data_dir={shared_tfds_dir}']
  result = subprocess.run(
      [sys.executable, str(ROOT / 'bin' / 'speedrun.py'), '--seeds=2',
       '--target=0.05', f'--out={out}', '--', *main_args],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  record = json.load(open(out / 'speedrun.json'))
  assert [r['seed'] for r in record['seeds']] == [0, 1]
  for r in record['seeds']:
    # Final weights (no hold-out): step 6 of 16 images; timed end to end.
    assert r['evaluated_step'] == 6 and r['images_seen'] == 96
    assert not r['selected_on_validation']
    assert r['wall_seconds'] > r['train_wall_seconds'] > 0
    summary = json.load(open(out / f'seed-{r["seed"]}' / 'summary.json'))
    assert r['test_accuracy'] == summary['test_accuracy']
  accuracies = [r['test_accuracy'] for r in record['seeds']]
  assert record['accuracy']['mean'] == pytest.approx(sum(accuracies) / 2)
  assert record['reached'] == sum(a >= 0.05 for a in accuracies)
  table = (out / 'speedrun.md').read_text()
  assert '| 1 |' in table and 'over 2 seeds, 95 % interval' in table
  assert 'compile cache:' in table and f"commit {record['commit']}" in table
  # A seed is never resumed: its time would not run end to end.
  with pytest.raises(FlaxdilError, match='holds a run already'):
    speedrun.run_seed(main_args, 0, str(out / 'seed-0'))


@pytest.mark.parametrize('seeds,target,message', [
    ([], None, r'give --seeds >= 1'),
    ([0], 84.25, r'--target=84.25 is not a test accuracy in \(0, 1\]'),
])
def test_bad_speedrun_flags_are_refused_before_anything_is_written(
    tmp_path, tiny_config, seeds, target, message):
  with pytest.raises(FlaxdilError, match=message):
    speedrun.run(tiny_config, [], seeds, str(tmp_path / 'out'), target)
  assert not (tmp_path / 'out').exists()


def test_bad_bench_loop_counts_are_refused(tiny_config):
  from flaxdil.experiments import loop_benchmark
  with pytest.raises(FlaxdilError, match='--steps=99: each count'):
    loop_benchmark.run(tiny_config, [], steps=99, log_every=50)
  with pytest.raises(FlaxdilError, match='--repeats=0: each count'):
    loop_benchmark.run(tiny_config, [], steps=200, log_every=50, repeats=0)
