"""config.image_size: the size the network sees, a resize on the device
that training, evaluation, inspection and export all see, and part of the
model's identity."""

import functools
import json

import jax
import numpy as np
import pytest

from conftest import load_config
from flaxdil import models
from flaxdil.cli import modes
from flaxdil.data import augment
from flaxdil.errors import WorkdirError
from flaxdil.training import devices, steps
from flaxdil.workdir import record
from test_export import needs_exporters, onnx_and_jax_logits
from test_steps import INFO, fake_split, make_state

_RESIZED = 36  # INFO's 12×12 images, enlarged 3×.


def _resized(images):
  normalized = augment.normalize(images, INFO.mean, INFO.std)
  return jax.image.resize(normalized, (len(images), _RESIZED, _RESIZED, 3),
                          'bilinear', antialias=False)


def test_training_sees_the_augmented_images_resized(tiny_config):
  """The loss and gradients of a train step with image_size are those of
  the same network without it, fed the augmented, normalised images after
  a bilinear resize."""
  tiny_config.image_size = _RESIZED
  placed = jax.local_devices()[:1]
  images, labels = fake_split(8)
  key = jax.random.key(3)
  keys = steps.example_keys(key, 0, np.arange(8))  # Step 0, rows 0..7.
  state = make_state(tiny_config)
  step = jax.pmap(functools.partial(steps.train_step, config=tiny_config,
                                    info=INFO),
                  axis_name=steps.AXIS, devices=placed)
  _, metrics = step(devices.replicate(state, placed),
                    devices.shard({'image': images[None],
                                   'label': labels[None]}, placed),
                    devices.replicate(key, placed))
  native = load_config('tiny')
  model = models.create_model(native, INFO.num_classes)

  @jax.jit  # One program, as the step is: op by op would compile each op.
  def reference_loss(variables):
    augmented = augment.augment(images, keys, native.crop_padding,
                                native.random_flip)
    logits, _ = model.apply(variables, _resized(augmented), train=True,
                            mutable=['batch_stats'])
    return steps.cross_entropy(logits, labels).mean()

  want = reference_loss({'params': state.params,
                         'batch_stats': state.batch_stats})
  np.testing.assert_allclose(float(metrics['loss'][0]), float(want),
                             rtol=1e-5)


def test_evaluation_sees_the_images_resized(tiny_config):
  tiny_config.image_size = _RESIZED
  tiny_config.test_time_flip = True
  state = make_state(tiny_config)
  images, _ = fake_split(4)
  got = jax.jit(functools.partial(steps.predict, info=INFO,
                                  test_time_flip=True))(state, images)
  native = models.create_model(load_config('tiny'), INFO.num_classes)

  @jax.jit
  def reference(variables):
    x = _resized(images)
    return (native.apply(variables, x, train=False)
            + native.apply(variables, x[:, :, ::-1], train=False)) / 2

  want = reference({'params': state.params, 'batch_stats': state.batch_stats})
  np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_inspection_shows_map_sizes_taps_and_fields_at_the_size_seen(capsys):
  """At 96×96 (CIFAR-10 enlarged 3×) the paper's δ = 2 taps read the map
  where at 32×32 only their centre did; the MACs grow 9×."""
  native = modes.inspect_model(load_config('cifar10'), as_json=True)
  summary = modes.inspect_model(load_config('cifar10', 'image_size=96'),
                                as_json=True)
  capsys.readouterr()
  assert summary['input_shape'] == [32, 32, 3]
  assert summary['network_input_shape'] == [96, 96, 3]
  assert summary['layers'][0]['kind'] == 'resize'
  depthwise = [l for l in summary['layers'] if l['kind'] == 'depthwise_conv']
  assert [tuple(l['output_hw']) for l in depthwise] == (
      [(96, 96)] + [(48, 48)] * 2 + [(24, 24)] * 2 + [(12, 12)] * 4)
  assert [l['active_taps'] for l in depthwise] == [9] * 9
  native_depthwise = [l for l in native['layers']
                      if l['kind'] == 'depthwise_conv']
  assert native_depthwise[-1]['active_taps'] == 1
  # Fields in pixels of the 96×96 input: the effective one no longer stops.
  assert depthwise[-1]['effective_receptive_field'] == depthwise[-1][
      'receptive_field'] == 381
  assert native_depthwise[-1]['effective_receptive_field'] == 141
  assert summary['total_macs'] == pytest.approx(9 * native['total_macs'],
                                                rel=1e-3)
  assert summary['total_params'] == native['total_params']
  modes.inspect_model(load_config('cifar10', 'image_size=96'))
  assert 'network input: [96, 96, 3]' in capsys.readouterr().out


def _onnx_and_jax_logits(config):
  model = models.create_model(config, INFO.num_classes)
  images, _ = fake_split(3)
  return onnx_and_jax_logits(config, INFO, model, make_state(config), images)


@needs_exporters
def test_the_onnx_graph_resizes_as_the_network_does(tiny_config):
  tiny_config.image_size = _RESIZED
  got, want = _onnx_and_jax_logits(tiny_config)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_resuming_or_evaluating_at_another_size_is_refused(tiny_config,
                                                           tmp_path):
  record.start_session(tiny_config, str(tmp_path), {}, start_step=0)
  tiny_config.image_size = 64
  with pytest.raises(WorkdirError, match='image_size: workdir has None, '
                     'config has 64'):
    record.check_identity(tiny_config, str(tmp_path))
  # A workdir from before the field existed was trained at the native size.
  saved = json.loads((tmp_path / 'config.json').read_text())
  del saved['image_size']
  (tmp_path / 'config.json').write_text(json.dumps(saved))
  with pytest.raises(WorkdirError, match='image_size'):
    record.check_resume(tiny_config, str(tmp_path))
  tiny_config.image_size = None
  assert record.check_resume(tiny_config, str(tmp_path)) == {}


@needs_exporters
@pytest.mark.parametrize('flip,shift', [(True, 0), (False, 1), (True, 2)])
def test_the_onnx_graph_computes_the_test_time_augmentation(tiny_config, flip,
                                                            shift):
  tiny_config.test_time_flip, tiny_config.test_time_shift = flip, shift
  got, want = _onnx_and_jax_logits(tiny_config)
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
