"""bin/sweep.py and bin/report.py: sweeps that resume, budgets, tables, plots."""

import json
import os
import subprocess
import sys

import pytest
import tensorflow_datasets as tfds

from conftest import ROOT
from flaxdil import models
from flaxdil.errors import ConfigError, FlaxdilError
from flaxdil.experiments import report, shards, sweep
from flaxdil.models import baselines

CONFIGS = str(ROOT / 'configs')
_TINY_SWEEP = [sweep.Run('delta0', 'tiny', 'dilation=0'),
               sweep.Run('delta1', 'tiny', 'dilation=1')]


@pytest.fixture
def tiny_sweep(monkeypatch):
  monkeypatch.setitem(sweep.SWEEPS, 'tiny', _TINY_SWEEP)
  with tfds.testing.mock_data(num_examples=150):
    yield


def test_every_named_sweep_builds_the_models_it_names():
  """Each run's config builds the model of its row: Table 2 the paper's
  network with δ = 0..3 in all nine modules, Table 1 the paper's network,
  our layout and the four baselines, all of them on CIFAR-10."""
  built = {}
  for name, runs in sweep.SWEEPS.items():
    for run in runs:
      config = sweep.load_config(run, CONFIGS)
      assert config.dataset == 'cifar10', (name, run)
      built[name, run.name] = models.create_model(config, 10)
  assert [built['table2', f'delta{d}'].dilations for d in range(4)] == [
      (d,) * 9 for d in range(4)]
  assert built['table1', 'dilated_net'].dilations == (2,) * 9
  assert built['table1', 'dilated_net_mixed'].dilations == (0, 0, 1, 0, 1, 0, 0, 0, 0)
  for model in ('mobilenet_v1', 'squeezenet', 'googlenet', 'vgg16'):
    assert type(built['table1', model]) is baselines.BASELINES[model]
    assert built['table1', model].stem == 'cifar'
  # The ablation's runs: the paper's network, each one change from the
  # fast recipe.
  fast = sweep.load_config(sweep.SWEEPS['fast_ablation'][0], CONFIGS)
  for run in sweep.SWEEPS['fast_ablation'][1:]:
    config = sweep.load_config(run, CONFIGS)
    changed = [k for k in config if config[k] != fast[k]]
    assert len(changed) == 1, (run.name, changed)
    assert built['fast_ablation', run.name].dilations == (0,) * 9


def test_a_run_that_reads_another_may_change_only_how_it_is_tested():
  """The ablation's evaluation-side rows test the recipe's own weights; a
  row that would have trained differently is refused before anything
  runs, naming the field."""
  runs = sweep.SWEEPS['fast_ablation']
  fast = sweep.load_config(runs[0], CONFIGS)
  readers = [run for run in runs if run.reads]
  assert [(r.name, r.reads) for r in readers] == [
      ('without_ema', 'fast'), ('without_test_time_flip', 'fast'),
      ('without_test_time_shift', 'fast')]
  for run in readers:
    sweep.check_reads(run, sweep.load_config(run, CONFIGS), fast)
  for arg, field in (('weight_decay=0.0', 'weight_decay: 1.5 there, 0.0'),
                     ('ema_decay=0.9', 'ema_decay: 0.99 there, 0.9')):
    run = sweep.Run('bad', 'cifar10_fast', arg, reads='fast')
    with pytest.raises(ConfigError, match=field):
      sweep.check_reads(run, sweep.load_config(run, CONFIGS), fast)
  # With seeds, each reads the run of its own seed.
  assert [r.reads for r in sweep.with_seeds(readers[:1], 2)] == [
      'fast-seed0', 'fast-seed1']


@pytest.mark.slow
def test_a_run_that_reads_waits_then_tests_the_trained_weights(
    monkeypatch, tmp_path, capsys):
  monkeypatch.setitem(sweep.SWEEPS, 'tiny', [
      sweep.Run('flipped', 'tiny', 'dilation=0,test_time_flip=True',
                reads='trained'),
      sweep.Run('trained', 'tiny', 'dilation=0'),
      sweep.Run('again', 'tiny', 'dilation=0', reads='trained')])
  root = str(tmp_path / 'sweep')
  with tfds.testing.mock_data(num_examples=150):
    sweep.run_sweep('tiny', root, CONFIGS, 'num_train_steps=2')
    assert 'flipped: reads ' in capsys.readouterr().out  # Not trained yet.
    assert not os.path.exists(os.path.join(root, 'flipped', 'summary.json'))
    sweep.run_sweep('tiny', root, CONFIGS, 'num_train_steps=2')
  summary = {name: json.load(open(os.path.join(root, name, 'summary.json')))
             for name in ('flipped', 'trained', 'again')}
  # The same weights read the same way: the trained run's own figure.
  assert summary['again']['test_accuracy'] == summary['trained']['test_accuracy']
  for name in ('flipped', 'again'):
    assert summary[name]['reads'] == os.path.join(root, 'trained')
    assert summary[name]['best_step'] == summary['trained']['best_step']
    assert not os.path.exists(os.path.join(root, name, 'checkpoints'))
  assert json.load(open(os.path.join(root, 'flipped', 'config.json'))
                   )['test_time_flip'] is True
  assert len(report.load_run(os.path.join(root, 'flipped')).summary) > 0


@pytest.mark.slow
def test_sweep_trains_each_run_then_skips_finished_ones(tiny_sweep, tmp_path, capsys):
  root = str(tmp_path / 'sweep')
  workdirs = sweep.run_sweep('tiny', root, CONFIGS, 'num_train_steps=2')
  assert [os.path.basename(w) for w in workdirs] == ['delta0', 'delta1']
  for workdir, dilation in zip(workdirs, (0, 1)):
    assert json.load(open(os.path.join(workdir, 'config.json')))['dilation'] == dilation
    assert os.path.exists(os.path.join(workdir, 'summary.json'))
  capsys.readouterr()
  sweep.run_sweep('tiny', root, CONFIGS, 'num_train_steps=2')
  assert capsys.readouterr().out.count('finished earlier, skipped') == 2

  out = str(tmp_path / 'report')
  result = report.write_report([root], out)
  rows = [l for l in result['table'].splitlines() if l.startswith('| delta')]
  assert len(rows) == 2 and all('finished' in row for row in rows)
  assert '82.04' in rows[0] and '83.32' in rows[1]  # The paper's Table 2.
  for name in ('curves.png', 'accuracy_vs_dilation.png'):
    with open(os.path.join(out, name), 'rb') as f:
      assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  assert open(os.path.join(out, 'table.md')).read() == result['table']


@pytest.mark.slow
def test_a_shard_takes_its_own_runs_first_then_any_left():
  assert shards.parse_shard(None) == (0, 1)
  assert shards.parse_shard('1/3') == (1, 3)
  for bad in ('3/3', '-1/2', 'a/b', '2'):
    with pytest.raises(ConfigError, match='must be I/M'):
      shards.parse_shard(bad)
  assert shards.shard_order(5, (1, 2)) == [1, 3, 0, 2, 4]
  assert shards.shard_order(5, (0, 1)) == [0, 1, 2, 3, 4]


@pytest.mark.slow
def test_a_run_held_elsewhere_is_skipped_then_taken_by_the_next_shard(
    tiny_sweep, tmp_path, capsys):
  """Shards on shared storage: a run another live process holds is not
  started twice; once that process is gone, the next shard resumes it."""
  from flaxdil.workdir.lock import WorkdirLock
  root = str(tmp_path / 'sweep')
  held = os.path.join(root, 'delta0')
  os.makedirs(held)
  with WorkdirLock(held):  # As a shard elsewhere holds it while it trains.
    sweep.run_sweep('tiny', root, CONFIGS, 'num_train_steps=2',
                    shard=(1, 2))
  out = capsys.readouterr().out
  assert 'delta0: running elsewhere, skipped' in out
  assert os.path.exists(os.path.join(root, 'delta1', 'summary.json'))
  assert not os.path.exists(os.path.join(held, 'summary.json'))
  # Its shard died (the lock went with it): the next shard takes it over.
  sweep.run_sweep('tiny', root, CONFIGS, 'num_train_steps=2', shard=(1, 2))
  out = capsys.readouterr().out
  assert 'delta1: finished earlier, skipped' in out
  assert os.path.exists(os.path.join(held, 'summary.json'))


@pytest.mark.slow
def test_parallel_shards_each_run_on_their_own_cores(tmp_path):
  cores = sorted(os.sched_getaffinity(0))
  count = min(2, len(cores))
  code = ('import os, sys; from flaxdil import cores; '
          'cores.pin_from_environment(); '
          'print(sys.argv[1], sorted(os.sched_getaffinity(0)))')
  assert shards.parallel(['-c', code], count, str(tmp_path)) == [0] * count
  pinned = []
  for k in range(count):
    shard, mine = open(tmp_path / f'shard-{k}.log').read().split(' ', 1)
    assert shard == f'--shard={k}/{count}'
    pinned.append(json.loads(mine))
  assert sorted(sum(pinned, [])) == cores  # Each core once, none shared.
  with pytest.raises(ConfigError, match='--parallel'):
    shards.parallel(['-c', 'pass'], len(cores) + 1, str(tmp_path))


@pytest.mark.slow  # Two shards train the paper's network, 2 steps each.
def test_a_parallel_sweep_trains_each_run_on_its_shards_cores(
    tmp_path, shared_tfds_dir):
  """bin/sweep.py --parallel as a user runs it: each shard pins itself
  before JAX starts, and each run's summary.json says how many cores it
  could use."""
  count = min(2, len(os.sched_getaffinity(0)))
  root = tmp_path / 'sweep'
  result = subprocess.run(
      [sys.executable, str(ROOT / 'bin' / 'sweep.py'), '--sweep=table2',
       '--only=delta0,delta2', f'--parallel={count}', f'--root={root}',
       f'--set=data_dir={shared_tfds_dir},train_split=train[:256],'
       'test_split=test[:64],validation_size=0,num_train_steps=2,'
       'batch_size=16,eval_batch_size=32'],
      cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-3000:]
  for run in ('delta0', 'delta2'):
    summary = json.load(open(root / run / 'summary.json'))
    assert summary['final_step'] == 2
    assert summary['cores'] == len(os.sched_getaffinity(0)) // count
  assert sorted(os.listdir(root / 'shards')) == [
      f'shard-{k}.log' for k in range(count)]


@pytest.mark.slow  # Measures the step's speed, then trains: end to end.
def test_budget_is_measured_once_and_kept(tiny_sweep, tmp_path):
  root = str(tmp_path / 'sweep')
  sweep.run_sweep('tiny', root, CONFIGS, '', budget_minutes=0.02, only=['delta1'])
  workdir = os.path.join(root, 'delta1')
  budget = json.load(open(os.path.join(workdir, 'budget.json')))
  assert budget['measured_train_images_per_sec'] > 0
  expected = int(0.02 * 60 * budget['measured_train_images_per_sec'] / 16)
  assert budget['num_train_steps'] == max(expected, 1)
  saved = json.load(open(os.path.join(workdir, 'config.json')))
  assert saved['num_train_steps'] == budget['num_train_steps']
  assert not os.path.exists(os.path.join(root, 'delta0'))


def test_unknown_sweep_or_run_is_refused(tmp_path):
  with pytest.raises(ConfigError, match='unknown sweep'):
    sweep.run_sweep('table9', str(tmp_path), CONFIGS)
  with pytest.raises(ConfigError, match='--only names runs'):
    sweep.run_sweep('table2', str(tmp_path), CONFIGS, only=['delta7'])
  assert not os.listdir(tmp_path)


@pytest.mark.slow
def test_report_cli_without_workdirs_exits_2(tmp_path):
  result = subprocess.run(
      [sys.executable, str(ROOT / 'bin' / 'report.py'), str(tmp_path),
       f'--out={tmp_path / "out"}'], capture_output=True, text=True, cwd=ROOT)
  assert result.returncode == 2
  assert 'no training workdirs' in result.stderr
  assert not (tmp_path / 'out').exists()


def test_report_gives_the_minutes_until_validation_reached_the_paper(tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'config.json').write_text(json.dumps(
      {'model': 'dilated_net', 'dilation': 0}))  # The paper's δ = 0: 82.04 %.
  records = [{'split': 'train', 'step': 1, 'time': 1000.0, 'accuracy': 0.1,
              'images_per_sec': 100.0}]
  records += [{'split': 'validation', 'step': 10 * i, 'time': 1000.0 + 60 * t,
               'accuracy': a}
              for i, (t, a) in enumerate([(3, 0.70), (6, 0.8205), (9, 0.83)], 1)]
  (workdir / 'metrics.jsonl').write_text(
      ''.join(json.dumps(r) + '\n' for r in records))
  run = report.load_run(str(workdir))
  assert run.minutes_to(0.8204) == 6.0
  assert run.minutes_to(0.9) is None
  row = report.table([run]).splitlines()[2].split(' | ')
  assert row[8:10] == ['82.04', '6.0 min']
  assert row[3] == 'native'  # No config.image_size: the dataset's own.
  run.config['image_size'] = 96
  assert report.table([run]).splitlines()[2].split(' | ')[3] == '96×96'


def _synthetic_run(root, name, dilation, seed, accuracy, **fields):
  workdir = root / name
  workdir.mkdir(parents=True)
  config = {'model': 'dilated_net', 'dilation': dilation, 'seed': seed,
            'num_epochs': 3, 'data_dir': f'/data/{seed}', **fields}
  (workdir / 'config.json').write_text(json.dumps(config))
  (workdir / 'summary.json').write_text(json.dumps(
      {'test_accuracy': accuracy, 'num_params': 1, 'final_step': 10,
       'train_wall_time_sec': 60.0}))


def test_report_over_seeds_gives_mean_spread_interval_and_paired_differences(
    tmp_path):
  accuracy = {0: [0.70, 0.72, 0.74], 2: [0.50, 0.53, 0.53]}
  for dilation, values in accuracy.items():
    for seed, value in enumerate(values):
      _synthetic_run(tmp_path / 'sweep', f'delta{dilation}-seed{seed}',
                     dilation, seed, value)
  result = report.write_report([str(tmp_path / 'sweep')], str(tmp_path / 'out'))
  base, dilated = result['groups']
  assert (base['group'], base['n'], dilated['group']) == ('delta0', 3, 'delta2')
  assert base['mean'] == pytest.approx(0.72)
  assert base['std'] == pytest.approx(0.02)
  # Student's t with 2 degrees of freedom: 4.303 · 0.02 / √3.
  half = 4.303 * 0.02 / 3 ** 0.5
  assert base['ci95'] == pytest.approx([0.72 - half, 0.72 + half])
  paired = dilated['paired_to_reference']
  assert paired['seeds'] == [0, 1, 2]
  assert paired['differences'] == pytest.approx([-0.20, -0.19, -0.21])
  assert paired['mean'] == pytest.approx(-0.20)
  assert paired['excludes_zero'] and base['paired_to_reference'] is None
  table = result['table']
  assert table.startswith('## Over seeds')
  assert '| delta0 | 0 | native | 3 | 72.00 | 2.00 |' in table
  assert '-20.00 [' in table and 'excludes 0 | delta0 |' in table
  assert table.count('finished') == 6  # Every run's own row is kept.
  saved = json.load(open(tmp_path / 'out' / 'seeds.json'))
  assert [g['reference'] for g in saved['groups']] == [None, 'delta0']
  with open(tmp_path / 'out' / 'accuracy_vs_dilation.png', 'rb') as f:
    assert f.read(8) == b'\x89PNG\r\n\x1a\n'
  with pytest.raises(FlaxdilError, match="--reference='delta9' names no group"):
    report.write_report([str(tmp_path / 'sweep')], str(tmp_path / 'out'),
                        reference='delta9')


def test_each_input_size_is_paired_with_delta0_at_that_size(tmp_path):
  """A report over two resolutions: δ = 2 at 96×96 is paired with δ = 0 at
  96×96, not with the first δ = 0 found; the plot draws one line per size."""
  accuracy = {(0, None): [0.70, 0.72], (2, None): [0.50, 0.52],
              (0, 96): [0.80, 0.82], (2, 96): [0.75, 0.78]}
  for (dilation, size), values in accuracy.items():
    for seed, value in enumerate(values):
      _synthetic_run(tmp_path / f'size{size}', f'delta{dilation}-seed{seed}',
                     dilation, seed, value, image_size=size)
  result = report.write_report([str(tmp_path / 'sizeNone'),
                                str(tmp_path / 'size96')], str(tmp_path / 'out'))
  paired = {(g['group'], g['config']['image_size']): g['paired_to_reference']
            for g in result['groups']}
  assert paired[('delta2', None)]['mean'] == pytest.approx(-0.20)
  assert paired[('delta2', 96)]['mean'] == pytest.approx(-0.045)
  assert paired[('delta0', 96)] is None
  assert '| delta2 | 2 | 96×96 | 2 |' in result['table']
  assert os.path.join(str(tmp_path / 'out'), 'accuracy_vs_dilation.png') in result['plots']


def test_seeds_name_every_run_and_come_seed_major(tmp_path, monkeypatch):
  runs = sweep.with_seeds(sweep.SWEEPS['table2'][:2], 2)
  assert [r.name for r in runs] == ['delta0-seed0', 'delta1-seed0',
                                    'delta0-seed1', 'delta1-seed1']
  config = sweep.load_config(runs[3], CONFIGS, 'seed=7')
  assert (config.seed, config.dilation) == (1, 1)
  with pytest.raises(ConfigError, match='drop seed= from --set'):
    sweep.run_sweep('table2', str(tmp_path), CONFIGS, 'seed=7', seeds=2)
  with pytest.raises(ConfigError, match='--seeds=0'):
    sweep.run_sweep('table2', str(tmp_path), CONFIGS, seeds=0)
