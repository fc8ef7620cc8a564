"""bin/main.py as a user runs it (subprocesses: slow), and the inspection
it prints (in-process)."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, load_config
from flaxdil.cli import modes

def _run(*args, check=True, script='main.py', env=None):
  result = subprocess.run([sys.executable, str(ROOT / 'bin' / script), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env=env)
  if check:
    assert result.returncode == 0, result.stderr[-3000:]
  return result


@pytest.mark.slow
def test_train_then_eval_on_real_cifar10(shared_tfds_dir, tmp_path):
  workdir = str(tmp_path / 'run')
  # A TFDS slice in the config file's argument stays a split name.
  common = ['--config=configs/tiny.py:train_split=train[:3000]',
            f'--config.data_dir={shared_tfds_dir}', f'--workdir={workdir}']
  trained = _run(*common, '--config.num_train_steps=3',
                 '--config.eval_every_steps=3')
  assert 'step 3/3' in trained.stdout and 'test accuracy' in trained.stdout
  os.remove(os.path.join(workdir, 'eval_test.json'))
  # Without --config.data_dir, eval reads where the run did (its record),
  # and never looks in (or downloads to) TFDS's default under $HOME.
  home = tmp_path / 'home'
  home.mkdir()
  env = {k: v for k, v in os.environ.items() if k != 'TFDS_DATA_DIR'}
  evaluated = _run(common[0], f'--workdir={workdir}', '--mode=eval',
                   env=dict(env, HOME=str(home)))
  assert (f"Using the data_dir='{shared_tfds_dir}' that {workdir} recorded"
          in evaluated.stdout)
  assert os.listdir(home) == []
  result = json.load(open(os.path.join(workdir, 'eval_test.json')))
  assert result['num_examples'] == 10000 and result['step'] == 3
  assert 0.0 <= result['accuracy'] <= 1.0 and result['loss'] > 0
  assert json.loads(evaluated.stdout.strip().splitlines()[-1]) == result
  inspected = json.loads(_run(*common, '--mode=inspect', '--json').stdout)
  assert inspected['checkpoint_step'] == 3
  assert all('mean' in row for row in inspected['params'])


def test_inspect_json_describes_the_paper_network(capsys):
  summary = modes.inspect_model(load_config('cifar10'), as_json=True)
  assert json.loads(capsys.readouterr().out) == json.loads(json.dumps(summary))
  assert abs(summary['total_params'] - 3.1e6) <= 0.1e6
  depthwise = [l for l in summary['layers'] if l['kind'] == 'depthwise_conv']
  assert len(depthwise) == 9
  assert {(l['dilation'], l['lax_dilation'], l['filter_span']) for l in depthwise} == {(2, 5, 11)}
  assert depthwise[0]['padding'] == [[5, 5], [5, 5]]
  for field in ('name', 'kind', 'kernel', 'stride', 'lax_dilation', 'padding',
                'in_channels', 'out_channels', 'params', 'macs'):
    assert field in depthwise[0]
  # On the 4×4 maps of blocks 7-9 a tap spacing of 5 leaves only the centre:
  # the paper's receptive field grows there, the effective one does not.
  assert [l['active_taps'] for l in depthwise] == [9] * 6 + [1] * 3
  assert [l['effective_span'] for l in depthwise] == [11] * 6 + [1] * 3
  fields = [(l['receptive_field'], l['effective_receptive_field'])
            for l in depthwise]
  assert fields[5] == (141, 141) and fields[8] == (381, 141)
  assert sum(l['params'] for l in summary['layers']) == summary['total_params']
  # Eq. (2)-(4) against the traced layers: the separable cost is what the
  # depthwise and pointwise layers count, and its ratio to a dense 3×3
  # convolution's Lk²·H·N·Li² is 1/N + 1/Lk².
  layers = {l['name']: l for l in summary['layers']}
  costs = summary['joint_module_costs']
  assert [c['module'] for c in costs] == [f'block{i}/joint' for i in range(1, 10)]
  for cost in costs:
    dw, pw = layers[cost['module'] + '/depthwise'], layers[cost['module'] + '/pointwise']
    assert cost['separable_macs'] == dw['macs'] + pw['macs']
    h, n = dw['in_channels'], pw['out_channels']
    dense = 9 * h * n * dw['output_hw'][0] * dw['output_hw'][1]
    assert cost['standard_macs'] == dense
    assert cost['separable_macs'] / dense == pytest.approx(1 / n + 1 / 9)
  # The paper's layout at 32×32: 60.3 M multiply-adds (README, BENCHMARKS).
  assert summary['total_macs'] == pytest.approx(60.3e6, rel=1e-3)
  modes.inspect_model(load_config('cifar10', 'dilation=0'))
  table = capsys.readouterr().out
  assert 'Joint modules, Eq. (2)-(4)' in table and '0/1' in table


@pytest.mark.slow
@pytest.mark.parametrize('args,message', [
    # One of each way out: model, data, workdir and the flags themselves
    # (the range of every field is checked in-process, test_reliability).
    (['--config.dilation=-1'], 'config.dilation=-1 is not allowed'),
    (['--config=configs/tiny.py:widths=8:0:16'],
     'config.widths=(8, 0, 16) is not allowed'),
    (['--config.data_dir=/no/such/dir'], 'does not exist'),
    (['--mode=eval'], 'no checkpoints'),
    (['--config.batchsize=64'], "unknown config field 'batchsize' "
     "(--config.batchsize=64). Did you mean 'batch_size'? Fix:"),
    (['--config=configs/no_such_config.py'],
     "config file 'configs/no_such_config.py' does not exist (looked in"),
    (['--config=configs/tiny.py:dilation'], "config argument 'dilation' is not FIELD=VALUE"),
    (['--config.batch_size=abc'], 'flag --config.batch_size=abc'),
    (['--coordinator_address=localhost:1', '--num_processes=2',
      '--process_id=2'], 'must be in [0, --num_processes=2)'),
])
def test_bad_input_is_a_clear_error_and_leaves_no_workdir(tmp_path, args, message):
  workdir = tmp_path / 'run'
  result = _run('--config=configs/tiny.py', f'--workdir={workdir}', *args,
                check=False)
  assert result.returncode == 2, result.stderr[-2000:]
  assert message in result.stderr
  assert 'Traceback' not in result.stderr
  assert not workdir.exists()


@pytest.mark.slow
def test_a_bad_config_file_or_workdir_is_a_clear_error(tmp_path, shared_tfds_dir):
  broken = tmp_path / 'broken.py'
  broken.write_text('def get_config(:\n')
  raising = tmp_path / 'raising.py'
  raising.write_text('def get_config():\n  open("/no/such/file")\n')
  a_file = tmp_path / 'a_file'
  a_file.write_text('')
  damaged = tmp_path / 'damaged'
  damaged.mkdir()
  (damaged / 'config.json').write_text('{"model": ')
  for args, message in [
      ([f'--config={broken}', f'--workdir={tmp_path / "run"}'],
       'has a syntax error at line 1'),
      # The file's own error, not "missing".
      ([f'--config={raising}', f'--workdir={tmp_path / "run"}'],
       "failed while loading: [Errno 2] No such file or directory: "
       "'/no/such/file'. Fix the file"),
      (['--config=configs/tiny.py', f'--workdir={a_file}'],
       'is a file, not a directory'),
      # Found only when creating it, after the data is read (slices: the
      # whole training split takes 20 s to decode, and proves nothing more).
      (['--config=configs/tiny.py', '--workdir=/proc/flaxdil',
        f'--config.data_dir={shared_tfds_dir}',
        '--config.train_split=train[:200]', '--config.test_split=test[:100]'],
       "cannot write to --workdir='/proc/flaxdil'"),
      (['--config=configs/tiny.py', f'--workdir={damaged}'],
       f'{damaged}/config.json is not valid JSON (line 1, column 11')]:
    result = _run(*args, check=False)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert 'Traceback' not in result.stderr
  assert sorted(os.listdir(tmp_path)) == ['a_file', 'broken.py', 'damaged',
                                          'raising.py']
  assert os.listdir(damaged) == ['config.json']
  assert (damaged / 'config.json').read_text() == '{"model": '


@pytest.mark.slow
def test_bench_runs_in_a_tiny_mode():
  result = _run('--config=configs/tiny.py', '--runs=1', '--steps=1',
                '--latency_calls=2', script='bench.py')
  figures = json.loads(result.stdout.strip().splitlines()[-1])
  for key in ('train_images_per_sec', 'eval_images_per_sec',
              'latency_ms_batch1', 'peak_rss_mb', 'matmul_gflops_per_sec'):
    assert figures[key] > 0, key
  # The figures agree with each other and with the model: training costs
  # 3 × 2 FLOPs per multiply-add of the tiny model, and the share of the
  # matmul peak is that cost at the measured rate.
  from flaxdil import models
  from flaxdil.inspection import summary as model_summary
  macs = model_summary.summarize(models.create_model(load_config('tiny'), 10),
                                 (32, 32, 3))['total_macs']
  assert figures['train_gflops_per_image'] == round(6 * macs / 1e9, 3)
  share = (6 * macs * figures['train_images_per_sec']
           / (figures['matmul_gflops_per_sec'] * 1e9))
  assert figures['train_share_of_matmul_peak'] == pytest.approx(share, rel=0.01, abs=1e-3)
  assert figures['device'].startswith('2 x ')  # conftest's two CPU devices.
  assert (figures['batch_size'], figures['dilation']) == (16, 1)
  assert figures['jax_version']


@pytest.mark.slow
def test_profile_ops_charges_every_op_to_a_part_of_the_network():
  result = _run('--config=configs/tiny.py', '--steps=2', script='profile_ops.py')
  figures = json.loads(result.stdout.strip().splitlines()[-1])
  parts = {(direction, block, part): seconds
           for direction, block, part, seconds in figures['parts']}
  # Each block's convolutions and BatchNorm run forward and backward, and
  # each is found in the compiled program's metadata.
  blocks = len(load_config('tiny').widths)
  for block in range(1, blocks + 1):
    for part in ('depthwise', 'pointwise', 'bn'):
      for direction in ('forward', 'backward'):
        assert parts.get((direction, f'block{block}', part), 0) > 0, (
            direction, block, part)
  assert figures['unattributed_seconds'] <= 0.05 * figures['ops_seconds']
  assert figures['ops_seconds'] == pytest.approx(sum(parts.values()))
  assert '| block1 |' in result.stdout and '| depthwise |' in result.stdout


def test_profile_ops_reads_the_part_and_pass_from_op_name():
  from flaxdil.experiments.op_profile import attribute, op_sources
  assert attribute('jit(_fun)/transpose(jvp(DilatedNet))/block3/joint/'
                   'depthwise/pad') == ('backward', 'block3', 'depthwise')
  assert attribute('jit(_fun)/jvp(DilatedNet)/block1/relu/jit(relu)/max'
                   ) == ('forward', 'block1', 'relu')
  assert attribute('jit(_fun)/transpose(jvp(DilatedNet))/block2/joint/'
                   'depthwise/while/body/closed_call/mul'
                   ) == ('backward', 'block2', 'depthwise')
  assert attribute('jit(_fun)/jvp(DilatedNet)/resize/jit(_resize)/dot'
                   ) == ('forward', 'resize', 'resize')
  assert attribute('jit(_fun)/jit(_threefry_fold_in)/example_keys/add'
                   )[2] == 'random keys, augmentation'
  assert attribute('jit(_fun)/jvp(jit(log_softmax))/sub')[2] == 'loss'
  assert attribute('jit(_fun)/mul')[2] == 'optimizer, metrics, other'
  text = ('  %ynn_fusion.23 = f32[65536,8]{1,0} fusion(%a, %b), kind=kCustom, '
          'calls=%fused_computation.23, metadata={op_name="jit(_fun)/'
          'jvp(DilatedNet)/block1/joint/pointwise/dot_general"}\n'
          '  ROOT %copy.3 = f32[8]{0} copy(%x)\n')
  assert op_sources(text) == {
      'ynn_fusion.23': ('fusion', 'jit(_fun)/jvp(DilatedNet)/block1/joint/'
                        'pointwise/dot_general'),
      'copy.3': ('copy', '')}


def test_profile_ops_refuses_to_trace_no_steps():
  result = _run('--config=configs/tiny.py', '--steps=0', check=False,
                script='profile_ops.py')
  assert result.returncode == 2
  assert '--steps=0: trace at least 1 step.' in result.stderr
  assert 'Traceback' not in result.stderr
