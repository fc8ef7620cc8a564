"""The stream input pipeline: each step's rows read on the host, bitwise
the batches of the device pipeline; images of any size (ImageNet on TFDS's
mock data); undecodable records; the choice of pipeline."""

import json
import os
import re
import shutil

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from conftest import load_config
from flaxdil.data import images, source
from flaxdil.errors import DataError
from flaxdil.training import evaluation, inputs, loop
from flaxdil.training.devices import Devices
from test_loop import _arrays, _assert_bitwise_equal, _records
from test_tiny_imagenet import write_fake_zip


def _real_tiny(config, data_dir):
  config.data_dir = data_dir
  config.train_split, config.test_split = 'train[:1200]', 'test[:300]'
  config.num_train_steps, config.eval_every_steps = 12, 6
  config.keep_checkpoints = 10
  return config


@pytest.mark.slow
def test_stream_trains_bitwise_like_device(tiny_config, tmp_path,
                                           shared_tfds_dir, capsys):
  _real_tiny(tiny_config, shared_tfds_dir)
  # The alternating flip's bits travel with the rows in both pipelines
  # (the only part of a step's input that differs from the default's), and
  # through blocks of steps (the resume below) alike.
  tiny_config.alternating_flip = True
  summaries = {}
  for pipeline in ('device', 'stream'):
    tiny_config.input_pipeline = pipeline
    summaries[pipeline] = loop.train_and_evaluate(tiny_config,
                                                  str(tmp_path / pipeline))
    assert f'Input pipeline: {pipeline} (config.input_pipeline).' in (
        capsys.readouterr().out)
  for step in (6, 12):
    _assert_bitwise_equal(_arrays(tmp_path / 'stream', step),
                          _arrays(tmp_path / 'device', step))
  # The validation and test splits stream too: every example once.
  assert _records(tmp_path / 'stream') == _records(tmp_path / 'device')
  assert summaries['stream']['test_accuracy'] == summaries['device'][
      'test_accuracy']
  assert summaries['stream']['input_pipeline'] == 'stream'
  test = json.load(open(tmp_path / 'stream' / 'eval_test[:300].json'))
  assert test['num_examples'] == 300

  # A resume needs no iterator state: the order is a function of the step.
  resumed = tmp_path / 'resumed'
  shutil.copytree(tmp_path / 'stream', resumed)
  shutil.rmtree(resumed / 'checkpoints' / '12')
  os.remove(resumed / 'summary.json')
  tiny_config.steps_per_dispatch = 2  # And blocks of steps read alike.
  loop.train_and_evaluate(tiny_config, str(resumed))
  _assert_bitwise_equal(_arrays(resumed, 12), _arrays(tmp_path / 'device', 12))


def _imagenet_config(tmp_path, **fields):
  config = load_config('imagenet', 'widths=8:8:8:8:16:16:16:16:16,'
                       'image_size=32,batch_size=8,eval_batch_size=8,'
                       'validation_size=4,num_train_steps=3,'
                       'eval_every_steps=3,warmup_epochs=0.0,'
                       'log_every_steps=1')
  (tmp_path / 'manual').mkdir(exist_ok=True)
  config.manual_dir = str(tmp_path / 'manual')
  for key, value in fields.items():
    config[key] = value
  return config


@pytest.mark.slow
def test_imagenet_trains_end_to_end_on_mock_data(tmp_path, capsys):
  """TFDS's mock imagenet2012 has images of random sizes, e.g. 47×17: the
  host crops them to image_size, and training, validation and the test
  split all run."""
  config = _imagenet_config(tmp_path)
  with tfds.testing.mock_data(num_examples=20,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    summary = loop.train_and_evaluate(config, str(tmp_path / 'run'))
    assert 'Input pipeline: stream (imagenet2012 images vary in size)' in (
        capsys.readouterr().out)
    assert summary['final_step'] == 3 and summary['input_pipeline'] == 'stream'
    result = evaluation.evaluate_checkpoint(config, str(tmp_path / 'run'))
  assert result['num_examples'] == 20 and 0 <= result['accuracy'] <= 1


def test_imagenet_config_builds_both_networks_at_224(tmp_path):
  """configs/imagenet.py: the paper's network and 1.0 MobileNet 224, with
  the parameter counts its docstring states."""
  from flaxdil.cli import modes
  with tfds.testing.mock_data(num_examples=4,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    paper_net = modes.inspect_model(load_config('imagenet'))
    mobilenet = modes.inspect_model(
        load_config('imagenet', 'model=mobilenet_v1,stem=imagenet'))
  assert paper_net['network_input_shape'] == [224, 224, 3]
  assert paper_net['layers'][0]['kind'] != 'resize'  # The host crops.
  assert (paper_net['total_params'], round(paper_net['total_macs'] / 1e6, 1)
          ) == (4123907, 428.2)
  assert (mobilenet['total_params'], round(mobilenet['total_macs'] / 1e6, 1)
          ) == (4231976, 568.7)


def test_varying_sizes_need_an_image_size_and_the_stream(tmp_path):
  config = _imagenet_config(tmp_path, image_size=None)
  with tfds.testing.mock_data(num_examples=4,
                              policy=tfds.testing.MockPolicy.USE_CODE):
    with pytest.raises(DataError, match='images of varying size .* Fix: set '
                       '--config.image_size'):
      source.dataset_info(config)
    from flaxdil.config import rules
    from flaxdil.errors import ConfigError
    config.image_size, config.input_pipeline = 32, 'device'
    with pytest.raises(ConfigError, match='input_pipeline=stream'):
      rules.check_run(config)


def test_imagenet_without_its_downloaded_files_is_one_clear_error(tmp_path):
  config = load_config('imagenet')
  config.data_dir = str(tmp_path / 'tfds')
  (tmp_path / 'tfds').mkdir()
  from flaxdil.config import rules
  with pytest.raises(DataError, match="dataset 'imagenet2012' is not prepared "
                     'in .* set --config.manual_dir'):
    rules.check_splits(config, rules.training_splits(config))
  config.data_dir = None
  with pytest.raises(DataError, match='downloaded by hand .*ILSVRC2012_img_'
                     'train.tar.* --config.manual_dir=DIR'):
    rules.check_splits(config, rules.training_splits(config))


def test_host_crops_are_a_function_of_seed_step_and_position():
  image = np.random.default_rng(0).integers(0, 256, (47, 17, 3), np.uint8)
  crop = images.random_resized_crop(image, 32, seed=0, step=5, position=3)
  assert crop.shape == (32, 32, 3) and crop.dtype == np.uint8
  np.testing.assert_array_equal(
      crop, images.random_resized_crop(image, 32, seed=0, step=5, position=3))
  others = [images.random_resized_crop(image, 32, 0, 5, 4),
            images.random_resized_crop(image, 32, 0, 6, 3),
            images.random_resized_crop(image, 32, 1, 5, 3)]
  assert all(not np.array_equal(crop, other) for other in others)
  centre = images.centre_crop(image, 16)  # Shorter side 17 → 18, then 16.
  assert centre.shape == (16, 16, 3)
  np.testing.assert_array_equal(images.centre_crop(image, 16), centre)


def test_auto_picks_the_stream_where_the_split_does_not_fit(tiny_config,
                                                            monkeypatch):
  info = source.DatasetInfo('cifar10', 10, (32, 32, 3), (0.0,) * 3,
                            (1.0,) * 3)
  cpu = Devices.of(jax.devices()[:1])
  monkeypatch.setattr(inputs, '_memory_bytes', lambda device: 4 * 150 * 10**6)
  assert isinstance(inputs.choose(tiny_config, info, cpu, 45000),
                    inputs.DevicePipeline)
  monkeypatch.setattr(inputs, '_memory_bytes', lambda device: 4 * 130 * 10**6)
  pipeline = inputs.choose(tiny_config, info, cpu, 45000)
  assert isinstance(pipeline, inputs.StreamPipeline)
  assert '138 MB of decoded training images' in pipeline.reason
  varying = source.DatasetInfo('x', 10, (8, 8, 3), (0.0,) * 3, (1.0,) * 3,
                               varying_size=True)
  pipeline = inputs.choose(tiny_config, varying, cpu, 10)
  assert (pipeline.name, pipeline.reason) == ('stream',
                                              'x images vary in size')
  tiny_config.input_pipeline = 'device'
  assert inputs.choose(tiny_config, info, cpu, 45000).name == 'device'


@pytest.mark.slow
@pytest.mark.parametrize('pipeline', ['device', 'stream'])
def test_an_undecodable_record_is_replaced_in_training_and_stops_evaluation(
    tmp_path, tiny_config, capsys, pipeline):
  manual = tmp_path / 'manual'
  manual.mkdir()
  write_fake_zip(str(manual / 'tiny-imagenet-200.zip'), num_classes=200,
                 truncated=('n10000003_1.JPEG', 'val_5.JPEG'))
  tiny_config.dataset, tiny_config.manual_dir = 'tiny_imagenet', str(manual)
  tiny_config.data_dir = str(tmp_path / 'tfds')
  tiny_config.test_split, tiny_config.validation_size = 'validation', 40
  tiny_config.input_pipeline = pipeline
  tiny_config.num_train_steps = 30  # Reads far past the damaged record.
  workdir = tmp_path / 'run'
  with pytest.raises(DataError, match=r"record (\d+) of split 'validation' "
                     r'cannot be decoded \(OSError: image file is truncated'
                     ) as error:
    loop.train_and_evaluate(tiny_config, str(workdir))
  damaged = int(str(error.value).split()[1])
  out = capsys.readouterr().out
  bad_train = re.search(r"warning: record (\d+) of split 'train' cannot be "
                        'decoded', out)
  assert bad_train
  assert out.count('cannot be decoded (OSError)') == 1
  # The checkpoints before the final test are whole; the next start resumes.
  assert (workdir / 'checkpoints').is_dir()
  assert not (workdir / 'summary.json').exists()
  tiny_config.test_split = f'validation[:{damaged}]'
  summary = loop.train_and_evaluate(tiny_config, str(workdir))
  assert summary['final_step'] == 30
  # A whole run with the damaged training record held out for validation
  # counts it as one where training reads it.
  bad_train, num_train = int(bad_train.group(1)), 400
  tiny_config.validation_size = next(
      size for size in range(1, num_train)
      if bad_train in source.holdout(num_train, size)[1])
  summary = loop.train_and_evaluate(tiny_config, str(tmp_path / 'held_out'))
  assert summary['replaced_training_records'] == 1
