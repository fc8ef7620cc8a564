"""bin/speedrun.py: seeds timed end to end, their table and statistics."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
from flaxdil.errors import FlaxdilError
from flaxdil.experiments import report, speedrun
from flaxdil.workdir import lock


@pytest.mark.slow
def test_speedrun_times_each_seed_and_tables_them(tmp_path, shared_tfds_dir):
  """Two seeds at once (--parallel), each on its own cores, where the
  machine has two; one after the other where it has one."""
  out = tmp_path / 'fast'
  cores = len(os.sched_getaffinity(0))
  at_once = min(2, cores)
  main_args = ['--config=configs/tiny.py:train_split=train[:2000],'
               'test_split=test[:300],validation_size=0,num_train_steps=6',
               f'--config.data_dir={shared_tfds_dir}']
  result = subprocess.run(
      [sys.executable, str(ROOT / 'bin' / 'speedrun.py'), '--seeds=2',
       f'--parallel={at_once}', '--target=0.05', f'--out={out}', '--',
       *main_args],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  record = json.load(open(out / 'speedrun.json'))
  assert [r['seed'] for r in record['seeds']] == [0, 1]
  for r in record['seeds']:
    # The cores each seed's own process saw (its summary.json): pinned.
    assert (r['at_once'], r['cores']) == (at_once, cores // at_once)
    # Final weights (no hold-out): step 6 of 16 images; timed end to end.
    assert r['evaluated_step'] == 6 and r['images_seen'] == 96
    assert not r['selected_on_validation']
    assert r['wall_seconds'] > r['train_wall_seconds'] > 0
    assert r['median_images_per_sec'] > 0
    assert 0 <= r['final_train_accuracy'] <= 1
    summary = json.load(open(out / f'seed-{r["seed"]}' / 'summary.json'))
    assert r['test_accuracy'] == summary['test_accuracy']
    assert json.load(open(out / f'seed-{r["seed"]}.json')) == r  # Kept.
  accuracies = [r['test_accuracy'] for r in record['seeds']]
  assert record['accuracy']['mean'] == pytest.approx(sum(accuracies) / 2)
  assert record['reached'] == sum(a >= 0.05 for a in accuracies)
  table = (out / 'speedrun.md').read_text()
  assert '| 1 |' in table and 'over 2 seeds, 95 % interval' in table
  assert 'compile cache:' in table and f"commit {record['commit']}" in table
  assert ('seeds run 2 at once, each pinned to its own' if at_once == 2
          else 'seeds run one at a time') in table
  # A seed is never resumed: its time would not run end to end.
  with pytest.raises(FlaxdilError, match='holds a run already'):
    speedrun.run_seeds(main_args, [0], str(out))


def _processes_naming(text: str) -> list[int]:
  """PIDs whose command line holds `text`."""
  found = []
  for pid in filter(str.isdigit, os.listdir('/proc')):
    try:
      with open(f'/proc/{pid}/cmdline', 'rb') as f:
        if text.encode() in f.read():
          found.append(int(pid))
    except OSError:
      pass  # Gone meanwhile.
  return found


@pytest.mark.slow
def test_a_stopped_speedrun_stops_its_training(tmp_path, shared_tfds_dir):
  """SIGTERM to bin/speedrun.py reaches the seed's training, which
  checkpoints and exits; nothing trains on unwatched."""
  out = tmp_path / 'stopped'
  speedrun_process = subprocess.Popen(
      [sys.executable, str(ROOT / 'bin' / 'speedrun.py'), '--seeds=1',
       f'--out={out}', '--',
       '--config=configs/tiny.py:train_split=train[:2000],validation_size=0,'
       'num_train_steps=100000', f'--config.data_dir={shared_tfds_dir}'],
      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  log = out / 'seed-0.log'
  deadline = time.monotonic() + 300
  while not (log.exists() and 'step ' in log.read_text()):
    assert speedrun_process.poll() is None, speedrun_process.communicate()
    assert time.monotonic() < deadline, 'the training never logged a step'
    time.sleep(0.5)
  speedrun_process.send_signal(signal.SIGTERM)
  _, stderr = speedrun_process.communicate(timeout=300)
  assert speedrun_process.returncode != 0
  assert 'stopped (SIGTERM) during seed 0, and its training with it' in stderr
  assert not _processes_naming(str(out / 'seed-0'))
  assert (out / 'seed-0' / 'checkpoints').is_dir()  # Saved as it stopped.


def _finished(seed: int, accuracy: float, wall_seconds: float) -> dict:
  """What run_seeds returns for a seed that trained (in the fakes below)."""
  return {'seed': seed, 'test_accuracy': accuracy,
          'wall_seconds': wall_seconds, 'train_wall_seconds': 50.0,
          'images_seen': 96, 'evaluated_step': 6, 'devices': '1 x cpu',
          'cores': 1, 'selected_on_validation': False}


def test_a_speedrun_resumes_by_seeds(tmp_path, tiny_config, monkeypatch):
  """Finished seeds are kept from an earlier sitting; a stopped one starts
  over with its workdir kept aside; other arguments are refused."""
  out, trained = tmp_path / 'fast', []

  def fake_seeds(main_args, seeds, out, cores):
    assert cores is None  # One at a time: nothing pinned.
    (seed,) = seeds
    os.makedirs(os.path.join(out, f'seed-{seed}'))
    (tmp_path / 'fast' / f'seed-{seed}' / 'partial').write_text('x')
    trained.append(seed)
    if seed == stop_at:
      return [FlaxdilError(f'stopped (SIGTERM) during seed {seed}')]
    return [_finished(seed, 0.8 + seed / 100, 60.0 + seed)]

  monkeypatch.setattr(speedrun, 'run_seeds', fake_seeds)
  stop_at = 1
  with pytest.raises(FlaxdilError, match='during seed 1'):
    speedrun.run(tiny_config, ['--a'], [0, 1], str(out), 0.81)
  assert (out / 'seed-0.json').exists() and not (out / 'seed-1.json').exists()
  assert not (out / 'speedrun.json').exists()  # No table of a stopped run.

  stop_at = None
  record = speedrun.run(tiny_config, ['--a'], [0, 1, 2], str(out), 0.81)
  assert trained == [0, 1, 1, 2]  # Seed 0 kept, seed 1 over from its start.
  assert (out / 'seed-1.stopped' / 'partial').exists()
  assert [r['seed'] for r in record['seeds']] == [0, 1, 2]
  assert record['reached'] == 2 and record['accuracy']['n'] == 3
  assert record['commit'] == record['seeds'][0]['commit']
  # Seeds recorded without the training log's figures show a dash.
  assert ('| 2 | 82.00 % | 1.0 min | 96 | — | — |'
          in (out / 'speedrun.md').read_text())

  # A seed whose training still runs (its workdir locked) is not set aside.
  (out / 'seed-3').mkdir()
  with lock.WorkdirLock(str(out / 'seed-3')):
    with pytest.raises(FlaxdilError, match='is in use by another run'):
      speedrun.run(tiny_config, ['--a'], [3], str(out), None)
  assert (out / 'seed-3').is_dir() and trained == [0, 1, 1, 2]

  with pytest.raises(FlaxdilError, match='ran other arguments'):
    speedrun.run(tiny_config, ['--b'], [0], str(out), None)
  assert trained == [0, 1, 1, 2]


def test_seeds_at_once_share_the_cores_and_keep_what_finished(
    tmp_path, tiny_config, monkeypatch):
  """With at_once=2, seeds go in pairs over slices of the cores (a last
  lone seed keeps its slice); a pair's seed that fails leaves its
  partner's result kept, and the error is raised."""
  groups = []
  monkeypatch.setattr(speedrun.shards, 'core_slices',
                      lambda count: [{0}, {1}][:count])

  def fake_seeds(main_args, seeds, out, cores):
    groups.append((list(seeds), cores))
    os.makedirs(out, exist_ok=True)  # As run_seeds does.
    return [FlaxdilError(f'seed {s} failed') if s == fail else
            _finished(s, 0.8, 60.0) for s in seeds]

  monkeypatch.setattr(speedrun, 'run_seeds', fake_seeds)
  out, fail = tmp_path / 'pairs', 1
  with pytest.raises(FlaxdilError, match='seed 1 failed'):
    speedrun.run(tiny_config, ['--a'], [0, 1, 2], str(out), None, at_once=2)
  assert groups == [([0, 1], [{0}, {1}])]  # Stopped after the failed pair.
  assert (out / 'seed-0.json').exists() and not (out / 'seed-1.json').exists()
  fail = None
  record = speedrun.run(tiny_config, ['--a'], [0, 1, 2, 3], str(out), None,
                        at_once=2)
  assert groups[1:] == [([1, 2], [{0}, {1}]), ([3], [{0}, {1}])]  # 0 kept.
  assert [(r['at_once'], r['cores']) for r in record['seeds']] == [(2, 1)] * 4
  assert ('seeds run 2 at once, each pinned to its own 1 core.'
          in (out / 'speedrun.md').read_text())


def test_children_run_at_once_are_each_timed_to_their_own_end():
  from flaxdil.experiments import children
  start = time.monotonic()
  codes, stopped, ended = children.wait([
      subprocess.Popen([sys.executable, '-c', code]) for code in
      ('import time; time.sleep(1.5)', 'raise SystemExit(3)')])
  assert codes == [0, 3] and not stopped
  assert ended[1] - start < 1.0 <= ended[0] - start


def test_a_seed_records_its_logged_speed_and_fit(tmp_path):
  """The median images/s leaves out the first interval (it compiled);
  the training accuracy is the last log's; validation lines are not
  training's."""
  (tmp_path / 'config.json').write_text('{}')
  lines = [{'split': 'train', 'images_per_sec': 10.0, 'accuracy': 0.1},
           {'split': 'train', 'images_per_sec': 300.0, 'accuracy': 0.5},
           {'split': 'validation', 'images_per_sec': 1.0, 'accuracy': 0.9},
           {'split': 'train', 'images_per_sec': 280.0, 'accuracy': 0.6},
           {'split': 'train', 'images_per_sec': 310.0, 'accuracy': 0.7}]
  (tmp_path / 'metrics.jsonl').write_text(
      ''.join(json.dumps(line) + '\n' for line in lines))
  assert speedrun.training_log(report.load_run(str(tmp_path))) == {
      'median_images_per_sec': 300.0, 'final_train_accuracy': 0.7}
  (tmp_path / 'metrics.jsonl').write_text('')  # Killed before a log.
  assert speedrun.training_log(report.load_run(str(tmp_path))) == {
      'median_images_per_sec': None, 'final_train_accuracy': None}


@pytest.mark.parametrize('seeds,target,at_once,message', [
    ([], None, 1, r'give --seeds >= 1'),
    ([0], 84.25, 1, r'--target=84.25 is not a test accuracy in \(0, 1\]'),
    ([0], None, 999, r'--parallel=999: this machine lets this process use'),
    ([0], None, 0, r'--parallel=0'),
])
def test_bad_speedrun_flags_are_refused_before_anything_is_written(
    tmp_path, tiny_config, seeds, target, at_once, message):
  with pytest.raises(FlaxdilError, match=message):
    speedrun.run(tiny_config, [], seeds, str(tmp_path / 'out'), target,
                 at_once=at_once)
  assert not (tmp_path / 'out').exists()


def test_bad_bench_loop_counts_are_refused(tiny_config):
  from flaxdil.experiments import loop_benchmark
  with pytest.raises(FlaxdilError, match='--steps=99: each count'):
    loop_benchmark.run(tiny_config, [], steps=99, log_every=50)
  with pytest.raises(FlaxdilError, match='--repeats=0: each count'):
    loop_benchmark.run(tiny_config, [], steps=200, log_every=50, repeats=0)
