"""Several real processes on localhost, joined by jax.distributed (gloo
collectives on CPU): P processes x D devices train like 1 process x P*D
devices, resume and evaluate on other process counts, share one workdir
lock, stop together on a signal, and fail fast when one dies.

Every process is a `bin/main.py` subprocess with its own fake CPU devices
(flaxdil.experiments.local_launch); every wait has a timeout and each test kills what
it started, so a failure cannot hang the suite.
"""

import json
import signal
import sys
import time

import numpy as np
import pytest

from conftest import SHARED_TFDS
from flaxdil.experiments.local_launch import LocalRun

pytestmark = pytest.mark.slow

_REAL_DATA = (SHARED_TFDS / 'cifar10').is_dir()
# bin/main.py, inside TFDS's mock data where the real CIFAR-10 is absent.
_RUN_MAIN = f'''
import runpy, sys
sys.argv = ['bin/main.py'] + sys.argv[1:]
if {not _REAL_DATA}:
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=300):
    runpy.run_path('bin/main.py', run_name='__main__')
else:
  runpy.run_path('bin/main.py', run_name='__main__')
'''
_DATA_ARGS = ([f'--config.data_dir={SHARED_TFDS}',
               '--config.train_split=train[:2000]',
               '--config.test_split=test[:500]'] if _REAL_DATA else [])
_TINY = ['--config=configs/tiny.py', '--config.batch_size=16',
         '--config.eval_batch_size=24', *_DATA_ARGS]


@pytest.fixture
def runs(tmp_path):
  """Starts runs; kills whatever is left of them at the end of the test."""
  started = []

  def start(processes, devices, args, name):
    run = LocalRun(processes, devices, args, str(tmp_path), name,
                   command=[sys.executable, '-c', _RUN_MAIN])
    started.append(run)
    return run

  yield start
  for run in started:
    run.kill()


def _final_arrays(workdir) -> dict:
  import orbax.checkpoint as ocp
  directory = workdir / 'checkpoints'
  step = max(int(p.name) for p in directory.iterdir() if p.name.isdigit())
  with ocp.PyTreeCheckpointer() as checkpointer:
    tree = checkpointer.restore(str(directory / str(step) / 'default'))
  import jax
  return {jax.tree_util.keystr(path): np.asarray(leaf) for path, leaf in
          jax.tree_util.tree_flatten_with_path(tree)[0]}


def _records(workdir, split: str) -> list[dict]:
  lines = (workdir / 'metrics.jsonl').read_text().splitlines()
  return [r for r in map(json.loads, lines) if r['split'] == split]


# 2 x 1 streams: processes that read their own rows from disk train like
# one process holding the split. (Each case costs ~45 s of three processes
# on two cores, so the two layouts and the two pipelines share two cases.)
@pytest.mark.parametrize('processes,devices,pipeline',
                         [(2, 1, 'stream'), (2, 2, 'device')])
def test_p_processes_train_like_one_process_with_all_their_devices(
    runs, tmp_path, processes, devices, pipeline):
  args = [*_TINY, '--config.num_train_steps=4', '--config.eval_every_steps=2',
          '--config.log_every_steps=1']
  several = runs(processes, devices,
                 [*args, f'--config.input_pipeline={pipeline}',
                  f'--workdir={tmp_path / "several"}'], 'several')
  one = runs(1, processes * devices,
             [*args, '--config.input_pipeline=device',
              f'--workdir={tmp_path / "one"}'], 'one')
  assert several.wait(240) == [0] * processes, several.output()
  assert one.wait(240) == [0], one.output()

  # The same batches, augmentation and updates: parameters, optimizer
  # state, BatchNorm statistics agree up to the order of float sums.
  a, b = _final_arrays(tmp_path / 'several'), _final_arrays(tmp_path / 'one')
  assert a.keys() == b.keys()
  for name in a:
    np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-6,
                               err_msg=name)
  # Metrics reduced over all processes, written once (process 0).
  for split in ('train', 'validation'):
    several_records, one_records = (_records(tmp_path / w, split)
                                    for w in ('several', 'one'))
    assert [r['step'] for r in several_records] == [
        r['step'] for r in one_records]
    np.testing.assert_allclose([r['loss'] for r in several_records],
                               [r['loss'] for r in one_records], rtol=1e-5)
  # The test split: every example exactly once across processes.
  several_summary, one_summary = (
      json.loads((tmp_path / w / 'summary.json').read_text())
      for w in ('several', 'one'))
  test_file = next((tmp_path / 'one').glob('eval_*.json'))
  counted = json.loads((tmp_path / 'several' / test_file.name).read_text())
  assert counted['num_examples'] == json.loads(test_file.read_text())[
      'num_examples'] == (500 if _REAL_DATA else 300)
  assert several_summary['test_accuracy'] == pytest.approx(
      one_summary['test_accuracy'], abs=1.5 / counted['num_examples'])
  assert several_summary['devices'].endswith(f'in {processes} processes')
  # Progress lines come from process 0 only.
  assert 'step 4/4' in several.output(0)
  assert 'step 4/4' not in several.output(1)
  if pipeline == 'stream':
    assert 'Input pipeline: stream (config.input_pipeline).' in (
        several.output(0))
    # 4 steps of 16 examples: each process reads only its devices' rows.
    share = 4 * 16 // processes
    for i in range(processes):
      assert (f'process {i} of {processes} read {share} training records '
              '(0 replaced).') in several.output(i)


def test_a_signal_stops_every_process_at_one_step_and_any_count_resumes(
    runs, tmp_path):
  workdir = tmp_path / 'run'
  # Saves by time, due at nearly every logging step: every process must
  # join each (process 0's clock decides), or the run would hang.
  args = [*_TINY, '--config.num_train_steps=100000',
          '--config.eval_every_steps=100000', '--config.log_every_steps=5',
          '--config.checkpoint_every_minutes=0.001', f'--workdir={workdir}']
  first = runs(2, 1, args, 'first')
  first.wait_for('step ', timeout=180)

  # A second run, of two processes too, is refused by its process 0 and
  # both of its processes stop at once with the same message.
  second = runs(2, 1, args, 'second')
  assert second.wait(120) == [2, 2], second.output()
  for i in (0, 1):
    assert 'in use by another run' in second.output(i)
    assert '(process 0 of 2)' in second.output(i)

  # Ctrl-C on process 1: both processes save the same step and exit 75.
  first.processes[1].send_signal(signal.SIGINT)
  assert first.wait(120) == [75, 75], first.output()
  stopped = [int(first.output(i).split('after step ')[1].split(':')[0])
             for i in (0, 1)]
  assert stopped[0] == stopped[1]
  saved = sorted(int(p.name) for p in (workdir / 'checkpoints').iterdir()
                 if p.name.isdigit())
  assert saved[-1] == stopped[0]
  assert saved[:-1] and all(step % 5 == 0 for step in saved[:-1])  # By time.

  # One process with two devices resumes the two processes' checkpoint...
  resumed = runs(1, 2, [*args, f'--config.num_train_steps={stopped[0] + 2}'],
                 'resumed')
  assert resumed.wait(180) == [0], resumed.output()
  assert f'at step {stopped[0]}.' in resumed.output()
  # ...and one process with one device evaluates it.
  evaluated = runs(1, 1, [*args, '--mode=eval'], 'eval')
  assert evaluated.wait(120) == [0], evaluated.output()
  assert json.loads(evaluated.output().splitlines()[-1])['step'] == (
      stopped[0] + 2)


def test_when_one_process_dies_the_others_exit_with_a_clear_error(
    runs, tmp_path):
  args = [*_TINY, '--config.num_train_steps=100000',
          '--config.eval_every_steps=100000', '--config.log_every_steps=1',
          f'--workdir={tmp_path / "run"}']
  run = runs(2, 1, args, 'run')
  run.wait_for('step ', timeout=180)
  run.processes[1].kill()
  start = time.monotonic()
  code = run.processes[0].wait(timeout=90)  # Never hangs: fails the test.
  assert code == 4, run.output()
  assert time.monotonic() - start < 60
  assert 'another process of this run has most likely stopped' in run.output(0)
