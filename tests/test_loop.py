"""The loop at the speed of the step: several steps per dispatch, metrics
read only where needed, a profiler window, mixed precision."""

import glob
import json
import os
import shutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from flaxdil import models
from flaxdil.errors import TrainingDiverged
from flaxdil.training import loop
from flaxdil.training.metrics_log import NonFiniteStep, StepMetrics
from flaxdil.workdir import checkpoints
from test_steps import INFO, make_state


def _arrays(workdir, step):
  with ocp.PyTreeCheckpointer() as checkpointer:
    tree = checkpointer.restore(os.path.join(workdir, 'checkpoints', str(step),
                                             'default'))
  return {jax.tree_util.keystr(p): np.asarray(x)
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _records(workdir):
  lines = open(os.path.join(workdir, 'metrics.jsonl')).read().splitlines()
  return [(r['split'], r['step'], r['loss']) for r in map(json.loads, lines)]


def _assert_bitwise_equal(a, b):
  assert a.keys() == b.keys()
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _blocks_config(config):
  # Due steps at 8 and the end (14): blocks of 4 up to 8, one to 12, then
  # single steps, so both dispatch kinds run.
  config.num_train_steps, config.log_every_steps = 14, 8
  config.eval_every_steps = 8
  config.keep_checkpoints = 10
  return config


def test_stepmetrics_names_the_first_nonfinite_step_of_a_block():
  metrics = StepMetrics(False, in_flight=2)
  ok = {'loss': np.ones((2, 3)), 'nonfinite': np.zeros((2, 3))}
  bad = {'loss': np.array([[1.0, np.nan, np.nan]] * 2),
         'nonfinite': np.array([[0.0, 1.0, 1.0]] * 2)}
  metrics.add(1, 3, ok)
  metrics.add(4, 3, bad)
  with pytest.raises(NonFiniteStep, match=r'step 5: the loss \(nan\)') as e:
    metrics.take()
  assert e.value.step == 5
  skipping = StepMetrics(True, in_flight=2)
  skipping.add(1, 3, bad)
  skipping.add(4, 1, {'loss': np.ones(2), 'nonfinite': np.zeros(2)})
  assert [m['nonfinite'] for m in skipping.take()] == [0.0, 1.0, 1.0, 0.0]


@pytest.mark.slow
def test_several_steps_per_dispatch_train_bitwise_like_one(tiny_config,
                                                           tmp_path,
                                                           mock_cifar):
  _blocks_config(tiny_config)
  one = loop.train_and_evaluate(tiny_config, str(tmp_path / 'one'))
  tiny_config.steps_per_dispatch = 4
  four = loop.train_and_evaluate(tiny_config, str(tmp_path / 'four'))
  assert (one['final_step'], one['best_step']) == (four['final_step'],
                                                   four['best_step'])
  assert one['test_accuracy'] == four['test_accuracy']
  for step in (8, 14):
    _assert_bitwise_equal(_arrays(tmp_path / 'four', step),
                          _arrays(tmp_path / 'one', step))
  # Logged and validated at the same steps, with the same values.
  assert _records(tmp_path / 'four') == _records(tmp_path / 'one')

  # A resume that starts inside what would have been a block is exact.
  tiny_config.steps_per_dispatch = 1
  resumed = _resumed_in_blocks(tiny_config, tmp_path / 'resumed', 6)
  _assert_bitwise_equal(_arrays(resumed, 14), _arrays(tmp_path / 'one', 14))


def _resumed_in_blocks(config, workdir, step: int, cut: dict | None = None):
  """config's run in workdir, checkpointed every 3 steps, cut back to
  `step` and resumed at 4 steps a dispatch; `cut`, where given, receives
  the uninterrupted run's arrays of each checkpoint cut away."""
  config.checkpoint_every_steps = 3
  loop.train_and_evaluate(config, str(workdir))
  for name in os.listdir(workdir / 'checkpoints'):
    if name.isdigit() and int(name) > step:
      if cut is not None:
        cut[int(name)] = _arrays(workdir, name)
      shutil.rmtree(workdir / 'checkpoints' / name)
  os.remove(workdir / 'summary.json')
  config.steps_per_dispatch = 4
  loop.train_and_evaluate(config, str(workdir))
  return workdir


@pytest.mark.slow
def test_early_crops_train_first_and_resume_exactly(tiny_config, tmp_path,
                                                    mock_cifar, capsys):
  """config.early_size: the first epochs on smaller crops, in their
  own program; a block never spans the switch; a resume inside the early
  epochs, at K = 4, is bitwise the uninterrupted run at K = 1."""
  _blocks_config(tiny_config)
  loop.train_and_evaluate(tiny_config, str(tmp_path / 'whole'))
  # 86 training examples: 5 steps an epoch, so 1.2 epochs are 6 steps.
  tiny_config.early_size, tiny_config.early_epochs = 24, 1.2
  loop.train_and_evaluate(tiny_config, str(tmp_path / 'one'))
  assert 'the first 6 on 24x24 images (crop)' in capsys.readouterr().out
  cropped, uncropped = (_arrays(tmp_path / name, 14)
                        for name in ('one', 'whole'))
  assert any(not np.array_equal(cropped[k], uncropped[k]) for k in cropped)
  resumed = _resumed_in_blocks(tiny_config, tmp_path / 'resumed', 3)
  for step in (8, 14):
    _assert_bitwise_equal(_arrays(resumed, step), _arrays(tmp_path / 'one',
                                                          step))


@pytest.mark.slow
def test_a_divergence_inside_a_block_is_named_and_nothing_nonfinite_saved(
    tiny_config, tmp_path, mock_cifar):
  _blocks_config(tiny_config)
  tiny_config.steps_per_dispatch = 4
  tiny_config.learning_rate = 1e38
  workdir = str(tmp_path / 'run')
  with pytest.raises(TrainingDiverged, match=r'diverged at step 2: the loss '
                     r'\(.*\) or a gradient is not finite.*no checkpoint had '
                     'been saved'):
    loop.train_and_evaluate(tiny_config, workdir)
  store = checkpoints.CheckpointStore(workdir, create=False)
  assert store.all_steps() == []
  store.close()


@pytest.mark.slow
def test_a_profiler_window_writes_a_trace(tiny_config, tmp_path, mock_cifar,
                                          capsys):
  tiny_config.profile_steps = '1:3'
  workdir = tmp_path / 'run'
  loop.train_and_evaluate(tiny_config, str(workdir))
  traces = glob.glob(str(workdir / 'profile' / 'plugins' / 'profile' / '*' /
                         '*.xplane.pb'))
  assert traces and os.path.getsize(traces[0]) > 0
  out = capsys.readouterr().out
  assert 'Profile of steps 2-3 written to' in out
  assert 'tensorboard --logdir' in out and 'ui.perfetto.dev' in out


def test_bfloat16_computes_in_bfloat16_and_keeps_float32_state(tiny_config):
  """Mixed precision: parameters, optimizer state, BatchNorm statistics,
  the EMA and the logits (so the loss) in float32; the convolutions,
  matmuls and the activations between them in bfloat16."""
  tiny_config.dtype = 'bfloat16'
  tiny_config.ema_decay = 0.9
  state = make_state(tiny_config)
  stored = jax.tree_util.tree_leaves(
      (state.params, state.batch_stats, state.ema,
       [x for x in jax.tree_util.tree_leaves(state.opt_state)
        if jnp.issubdtype(x.dtype, jnp.floating)]))
  assert {x.dtype for x in stored} == {jnp.dtype('float32')}
  outputs = {}

  def record(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if context.method_name == '__call__':
      outputs.setdefault(type(context.module).__name__, set()).add(
          jnp.dtype(out.dtype).name)
    return out

  model = models.create_model(tiny_config, INFO.num_classes)
  images = jax.ShapeDtypeStruct((2,) + INFO.image_shape, jnp.float32)
  with nn.intercept_methods(record):  # Shapes and dtypes only: traced.
    logits = jax.eval_shape(
        lambda images: model.apply({'params': state.params,
                                    'batch_stats': state.batch_stats},
                                   images, train=False), images)
  for kind in ('DilatedDepthwiseConv', 'PointwiseConv', 'BatchNorm', 'Dense'):
    assert outputs[kind] == {'bfloat16'}, (kind, outputs[kind])
  assert logits.dtype == jnp.float32
