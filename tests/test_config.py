"""The config room: arguments as a user writes them, every field's rule in
one table, the checks that need the data or the devices, and what a
resumed run may change."""

import json
import os

import pytest

from conftest import ROOT, load_config
from flaxdil.config import defaults, files, rules
from flaxdil.data import source
from flaxdil.errors import ConfigError, DataError, WorkdirError
from flaxdil.experiments import sweep
from flaxdil.training import loop
from flaxdil.workdir import record


def test_every_field_has_a_default_and_one_rule():
  """One table holds each field's default and rule: get_config() is made
  from it, and the defaults pass their own rules."""
  config = defaults.get_config()
  assert set(config.keys()) == set(defaults.FIELDS)
  rules.check_fields(config)
  assert {field.on_resume for field in defaults.FIELDS.values()} == {
      defaults.IDENTITY, defaults.FIXED, defaults.FREE}
  # A field without a default takes values of its declared type.
  config.image_size = 96
  with pytest.raises(TypeError):
    config.data_dir = 3


@pytest.mark.parametrize('arg,field,value', [
    # A ':' inside a string's value is the value's (TFDS slices, paths).
    ('train_split=train[:10000]', 'train_split', 'train[:10000]'),
    ('test_split=test[:50%]+train[10:20]', 'test_split', 'test[:50%]+train[10:20]'),
    ('data_dir=/data/a:b', 'data_dir', '/data/a:b'),
    # Elsewhere ':' separates a tuple's items; ',' inside brackets stays.
    ('widths=8:16:32', 'widths', (8, 16, 32)),
    ('widths=(8,16,32)', 'widths', (8, 16, 32)),
    ('dilation=0:1:2', 'dilation', (0, 1, 2)),
    ('model=vgg16', 'model', 'vgg16'),
    ('num_epochs=2.5', 'num_epochs', 2.5),
])
def test_arguments_keep_what_the_user_wrote(arg, field, value):
  config = load_config('tiny', arg)
  assert config[field] == value
  # bin/sweep.py's --set reads values with the same parser.
  swept = sweep.load_config(sweep.Run('x', 'tiny'), str(ROOT / 'configs'), arg)
  assert swept[field] == value


def test_several_arguments_with_slices_and_tuples():
  config = load_config('tiny', 'train_split=train[:2000],strides=1:2:1,'
                       'test_split=test[:500]')
  assert (config.train_split, config.strides, config.test_split) == (
      'train[:2000]', (1, 2, 1), 'test[:500]')


@pytest.mark.parametrize('arg,message', [
    ('widths=8:0:16', 'config.widths=(8, 0, 16) is not allowed: use one integer >= 1'),
    ('widths=8:16', 'config.widths (2 entries) and config.strides (3)'),
    ('strides=1:3:1', 'config.strides=(1, 3, 1) is not allowed'),
    ('dilation=-1', 'config.dilation=-1 is not allowed'),
    ('dilation=1.5', 'config.dilation=1.5 is not allowed'),
    ('dilation=True', 'config.dilation=True is not allowed'),
    ("dilation='2'", "config.dilation='2' is not allowed"),
    ('dilation=0:1', 'gives 2 values for 3 basic structures'),
    ('dilation=0:1:-1', 'config.dilation=(0, 1, -1) is not allowed'),
    ('model=resnet', "config.model='resnet' is not allowed: use one of dilated_net"),
    ('stem=tiny', "config.stem='tiny' is not allowed"),
    ('conv_impl=cudnn', "config.conv_impl='cudnn' is not allowed"),
    ('dtype=float16', "config.dtype='float16' is not allowed"),
    ('lr_schedule=step', "config.lr_schedule='step' is not allowed"),
    ('train_split=', "config.train_split='' is not allowed"),
    ('num_train_steps=-1,num_epochs=0', 'trains nothing'),
    ('alternating_flip=True,random_flip=False', 'random_flip=False flips none'),
    ('test_time_shift=-1', 'config.test_time_shift=-1 is not allowed'),
    ('cutout=-2', 'config.cutout=-2 is not allowed: use an integer >= 0'),
    ('early_size=24', 'early_epochs=0.0: set both'),
    ('early_mode=resize', "early_mode='resize' with early_size=0"),
    ('early_mode=shrink', "config.early_mode='shrink' is not allowed"),
    ('early_size=24,early_epochs=2.0,image_size=32',
     'would resize each image to 32 again'),
    ('optimizer=lion', "config.optimizer='lion' is not allowed: use one of "
     'adam, sgd'),
    ('sgd_momentum=0.8', "config.sgd_momentum=0.8 set for optimizer='adam'"),
    ('nesterov=False', "config.nesterov=False set for optimizer='adam'"),
    ('optimizer=sgd,adam_b2=0.99', "config.adam_b2=0.99 set for optimizer='sgd'"),
    ('adam_b2=1.0', 'config.adam_b2=1.0 is not allowed'),
    ('optimizer=sgd,sgd_momentum=1.0', 'config.sgd_momentum=1.0 is not allowed'),
    ('lookahead_alpha=0.8', 'lookahead_steps=0 (Lookahead off) changes nothing'),
    ('lookahead_steps=-1', 'config.lookahead_steps=-1 is not allowed'),
])
def test_a_bad_value_is_one_line_naming_field_and_what_is_allowed(arg, message):
  with pytest.raises(ConfigError) as error:
    rules.check_fields(load_config('tiny', arg))
  assert message in str(error.value)
  assert '\n' not in str(error.value)


def test_an_impossible_model_shape_is_a_config_error():
  """Values each allowed, together a model that cannot take the images:
  found by tracing shapes, before anything is built."""
  small = source.DatasetInfo('small', 10, (8, 8, 3), (0.0,) * 3, (1.0,) * 3)
  with pytest.raises(ConfigError, match=r"model='vgg16'.*cannot classify .* "
                     r'images of shape \(8, 8, 3\)'):
    rules.check_model(load_config('baselines', 'model=vgg16'), small)
  rules.check_model(load_config('baselines', 'model=mobilenet_v1'), small)
  with pytest.raises(ConfigError, match='early_size=8 is not smaller'):
    rules.check_model(load_config('baselines', 'model=mobilenet_v1,'
                                  'early_size=8,early_epochs=1.0'),
                      small)
  with pytest.raises(ConfigError, match=r'early_size\).*cannot classify'
                     r'.* images of shape \(1, 1, 3\)'):
    rules.check_model(load_config('baselines', 'model=vgg16,'
                                  'early_size=1,early_epochs=1.0'),
                      source.DatasetInfo('big', 10, (32, 32, 3), (0.0,) * 3,
                                         (1.0,) * 3))
  with pytest.raises(ConfigError, match='test_time_shift=8 translates'):
    rules.check_model(load_config('baselines', 'model=mobilenet_v1,'
                                  'test_time_shift=8'), small)
  with pytest.raises(ConfigError, match='cutout=8 is not smaller than the '
                     '8-pixel images'):
    rules.check_model(load_config('baselines', 'model=mobilenet_v1,'
                                  'cutout=8'), small)
  with pytest.raises(ConfigError, match=r'cutout=4 .* 4-pixel images it would '
                     r'cut \(config.early_size\)'):
    rules.check_model(load_config('baselines', 'model=mobilenet_v1,cutout=4,'
                                  'early_size=4,early_epochs=1.0'), small)


def test_batch_sizes_must_divide_over_the_devices(tiny_config):
  tiny_config.batch_size = 15
  with pytest.raises(ConfigError, match='batch_size=15 is not divisible by '
                     r'the 2 devices \(cpu\); use a multiple of 2, e.g. '
                     '--config.batch_size=14'):
    rules.check_run(tiny_config)


def test_the_hold_out_and_the_batch_must_fit_the_training_split(tiny_config):
  tiny_config.validation_size = 100
  with pytest.raises(ConfigError, match='validation_size=100 must be smaller '
                     r"than the training split \(100 examples in 'train'\)"):
    rules.check_training_size(tiny_config, 100)
  tiny_config.validation_size, tiny_config.batch_size = 90, 16
  with pytest.raises(ConfigError, match='batch_size=16 is larger than the 10 '
                     'training examples left'):
    rules.check_training_size(tiny_config, 100)


def test_a_config_file_missing_is_a_config_error(tmp_path):
  with pytest.raises(ConfigError, match='does not exist'):
    files.load(str(tmp_path / 'none.py'))


def test_every_split_is_checked_before_the_workdir_is_created(
    tiny_config, tmp_path, shared_tfds_dir):
  """Reported from a user: a bad test split trained the whole run, then
  failed. Now it is refused before anything is read or written."""
  tiny_config.data_dir = shared_tfds_dir
  tiny_config.test_split = 'nosuch'
  workdir = tmp_path / 'run'
  with pytest.raises(DataError, match=r"config.test_split='nosuch': dataset "
                     r"'cifar10' cannot read that split \(Unknown split"):
    loop.train_and_evaluate(tiny_config, str(workdir))
  assert not workdir.exists()
  tiny_config.test_split = 'test[5:3]'  # An empty slice.
  with pytest.raises(DataError, match="config.test_split='test.5:3.'"):
    loop.train_and_evaluate(tiny_config, str(workdir))
  tiny_config.test_split, tiny_config.train_split = 'test', 'train[:70]'
  with pytest.raises(ConfigError, match='batch_size=16 is larger than the 6 '
                     'training examples left after the hold-out of 64'):
    loop.train_and_evaluate(tiny_config, str(workdir))
  assert not workdir.exists()


def test_a_sweep_checks_every_run_before_the_first_starts(tmp_path,
                                                          monkeypatch,
                                                          mock_cifar):
  monkeypatch.setitem(sweep.SWEEPS, 'mixed', [
      sweep.Run('fine', 'tiny', 'dilation=0'),
      sweep.Run('broken', 'tiny', 'dilation=-1')])
  with pytest.raises(ConfigError, match=r'sweep mixed, run broken: '
                     r'config.dilation=-1 is not allowed'):
    sweep.run_sweep('mixed', str(tmp_path), str(ROOT / 'configs'))
  assert not os.listdir(tmp_path)


def test_a_workdir_whose_config_record_is_not_json_is_one_clear_error(
    tiny_config, tmp_path):
  workdir = tmp_path / 'run'
  workdir.mkdir()
  (workdir / 'config.json').write_text('{"model": "dilated_net",')
  (workdir / 'metrics.jsonl').write_text('{"step": 1}\n')
  before = {p.name: p.read_bytes() for p in workdir.iterdir()}
  with pytest.raises(WorkdirError) as error:
    loop.train_and_evaluate(tiny_config, str(workdir))
  message = str(error.value)
  assert message.startswith(f'{workdir / "config.json"} is not valid JSON '
                            '(line 1, column 25')
  assert 'Fix: repair or restore it, or train in a new --workdir' in message
  assert '\n' not in message
  assert {p.name: p.read_bytes() for p in workdir.iterdir()} == before


def test_a_resume_may_change_only_what_keeps_the_run_the_same(
    tiny_config, tmp_path):
  """Reported from a user: a resume with another batch size, schedule or
  seed was taken silently and rewrote config.json."""
  workdir = tmp_path / 'run'
  workdir.mkdir()
  record.start_session(tiny_config, str(workdir), {}, start_step=0)
  recorded = (workdir / 'config.json').read_text()
  tiny_config.batch_size, tiny_config.seed = 8, 3
  tiny_config.learning_rate = 1e-3
  with pytest.raises(WorkdirError) as error:
    record.check_resume(tiny_config, str(workdir))
  message = str(error.value)
  for difference in ('batch_size: workdir has 16, config has 8',
                     'seed: workdir has 0, config has 3',
                     'learning_rate: workdir has 0.002, config has 0.001'):
    assert difference in message
  assert 'A resume may change only: data_dir' in message
  assert (workdir / 'config.json').read_text() == recorded
  # Longer training, other cadences and kernels are a resume's to change,
  # and each session says what it changed.
  tiny_config.batch_size, tiny_config.seed = 16, 0
  tiny_config.learning_rate = 2e-3
  tiny_config.num_train_steps, tiny_config.log_every_steps = 8, 1
  tiny_config.conv_impl = 'lax'
  changes = record.check_resume(tiny_config, str(workdir))
  assert changes == {'num_train_steps': (4, 8), 'log_every_steps': (2, 1),
                     'conv_impl': ('auto', 'lax')}
  record.start_session(tiny_config, str(workdir), changes, start_step=4)
  assert (workdir / 'config.json').read_text() == recorded
  sessions = record.read_sessions(str(workdir))
  assert [s['session'] for s in sessions] == [1, 2]
  assert sessions[1]['changes']['num_train_steps'] == {'recorded': 4, 'now': 8}
  assert sessions[1]['start_step'] == 4
  assert json.loads(recorded)['num_train_steps'] == 4


def test_a_workdir_s_recorded_data_location_is_used_where_none_is_given(
    tiny_config, tmp_path, monkeypatch, capsys):
  """A command naming a workdir reads the data where that run did (its
  config.json, then its sessions' changes), says so, and fails at once,
  looking nowhere else, where that place is gone."""
  from flaxdil.training import evaluation
  workdir = tmp_path / 'run'
  workdir.mkdir()
  saved = json.loads(tiny_config.to_json_best_effort())
  saved['data_dir'] = str(tmp_path / 'first')
  (workdir / 'config.json').write_text(json.dumps(saved))
  (workdir / 'sessions.jsonl').write_text(json.dumps(
      {'session': 2, 'changes': {'data_dir': {
          'recorded': saved['data_dir'], 'now': str(tmp_path / 'gone')}}})
      + '\n')
  monkeypatch.setenv('HOME', str(tmp_path / 'home'))
  monkeypatch.delenv('TFDS_DATA_DIR', raising=False)
  with pytest.raises(DataError, match=f"data directory '{tmp_path}/gone' "
                     r'\(config.data_dir\) does not exist'):
    evaluation.evaluate_checkpoint(tiny_config, str(workdir))
  assert (f"Using the data_dir='{tmp_path}/gone' that {workdir} recorded "
          '(set --config.data_dir to use another).') in capsys.readouterr().out
  assert not (tmp_path / 'home').exists()  # No TFDS default dir, no download.
  # What the command line sets wins, silently.
  tiny_config.data_dir = str(tmp_path / 'mine')
  kept = record.with_recorded_data_location(tiny_config, str(workdir))
  assert kept.data_dir == str(tmp_path / 'mine')
  assert capsys.readouterr().out == ''
