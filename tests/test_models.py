"""The network's shape, size and the meaning of its dilation."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from conftest import load_config
from flaxdil import models
from flaxdil.models import depthwise, dilation, layers


def _param_count(tree):
  return sum(x.size for x in jax.tree_util.tree_leaves(tree))


def _cifar10_variable_shapes(model):
  return jax.eval_shape(
      lambda: model.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3)),
                         train=False))


def test_paper_model_has_3_1_million_parameters():
  model = models.create_model(load_config('cifar10'), num_classes=10)
  variables = _cifar10_variable_shapes(model)
  count = _param_count(variables['params'])
  assert abs(count - 3.1e6) <= 0.1e6, count
  blocks = [k for k in variables['params'] if k.startswith('block')]
  assert len(blocks) == 9
  assert set(variables['params']['block1']) == {'joint', 'bn'}
  assert set(variables['params']['block1']['joint']) == {'depthwise', 'pointwise'}
  assert variables['params']['block9']['joint']['depthwise']['kernel'].shape == (3, 3, 1, 1024)


@pytest.mark.parametrize('impl', ['lax', 'fast'])
def test_logits_shape_and_downsampling(tiny_config, impl):
  tiny_config.conv_impl = impl
  model = models.create_model(tiny_config, num_classes=7)
  images = jnp.ones((3, 15, 17, 3))
  variables = jax.eval_shape(
      lambda: model.init(jax.random.key(0), images, train=False))
  # Shapes only: what runs is checked against lax elsewhere.
  logits, state = jax.eval_shape(lambda variables: model.apply(
      variables, images, train=False, capture_intermediates=True,
      mutable=['intermediates']), variables)
  assert logits.shape == (3, 7)
  assert logits.dtype == jnp.float32
  # Two stride-2 blocks: 15×17 → 8×9 → 4×5 (rounding up).
  assert state['intermediates']['block3']['__call__'][0].shape == (3, 4, 5, 16)


@pytest.mark.parametrize('delta,rate,span', [(0, 1, 3), (1, 3, 7), (2, 5, 11), (3, 7, 15)])
def test_paper_dilation_maps_to_lax_rate_and_span(delta, rate, span):
  assert dilation.lax_dilation(delta) == rate
  assert dilation.filter_span(delta) == span
  # What lax computes with that rate: an impulse spreads over exactly `span`
  # pixels per axis, and the padding keeps the size.
  impulse = jnp.zeros((1, 31, 31, 1)).at[0, 15, 15, 0].set(1.0)
  response = depthwise.depthwise_lax(impulse, jnp.ones((3, 3, 1, 1)), 1, rate)
  assert response.shape == impulse.shape
  rows, cols = np.nonzero(np.asarray(response[0, :, :, 0]))
  assert rows.max() - rows.min() + 1 == span == cols.max() - cols.min() + 1
  assert len(rows) == 9


def test_receptive_field_recursion():
  # Two 3×3 layers, the first with stride 2: 3, then 3 + 2·2 = 7.
  field, jump = dilation.grow_receptive_field(1, 1, 3, 2)
  assert (field, jump) == (3, 2)
  assert dilation.grow_receptive_field(field, jump, 3, 1) == (7, 2)


def _zero_inserted_dense_kernel(kernel, delta):
  """The C×C filter the paper draws: the 3×3 taps with (S+1)δ/2 zeros
  between neighbours, as an ordinary (non-grouped) convolution kernel
  that maps channel c to channel c only."""
  channels = kernel.shape[-1]
  span = dilation.filter_span(delta)
  step = (span - 1) // 2
  dense = np.zeros((span, span, channels, channels), np.float64)
  for a in range(3):
    for b in range(3):
      for c in range(channels):
        dense[a * step, b * step, c, c] = kernel[a, b, 0, c]
  return dense


@pytest.mark.parametrize('impl', layers.CONV_IMPLS)
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('delta', [0, 1, 2, 3])
def test_dilated_depthwise_equals_zero_inserted_dense_convolution(delta, stride, impl):
  with jax.enable_x64():
    x = jax.random.normal(jax.random.key(0), (2, 13, 16, 4), jnp.float64)
    module = layers.DilatedDepthwiseConv(dilation=delta, strides=stride,
                                         impl=impl, dtype=jnp.float64)
    # Compiled programs rather than one per operation: the suite's time.
    variables = jax.jit(module.init)(jax.random.key(1), x)
    kernel = np.asarray(variables['params']['kernel'], np.float64)
    got = jax.jit(module.apply)(variables, x)
    span = dilation.filter_span(delta)
    half = span // 2
    expected = lax.conv_general_dilated(
        x, jnp.asarray(_zero_inserted_dense_kernel(kernel, delta)),
        (stride, stride), ((half, half), (half, half)),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  assert got.shape == (2, -(-13 // stride), -(-16 // stride), 4)
  np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_auto_picks_the_kernels_measured_fastest_on_each_backend(
    tiny_config):
  assert jax.default_backend() == 'cpu'
  assert models.conv_impl('auto') == 'fast'
  assert models.conv_impl('lax') == 'lax'
  # GPU (results/gpu_h200): the library's grouped convolutions, except for
  # dilated depthwise filters.
  assert models.conv_impl('auto', dilated=False, backend='gpu') == 'lax'
  assert models.conv_impl('auto', dilated=True, backend='gpu') == 'fast'
  assert models.conv_impl('auto', dilated=True, backend='tpu') == 'lax'
  assert models.is_dilated(tiny_config)  # δ = 1.
  tiny_config.dilation = 0
  assert not models.is_dilated(tiny_config)
  assert models.is_dilated(load_config('tiny', 'dilation=0:0:2'))


@pytest.mark.parametrize('name', ['lax', 'fast'])
def test_every_layer_takes_the_configured_kernels(tiny_config, name):
  """conv_impl reaches every depthwise and pointwise layer, by one name."""
  tiny_config.conv_impl = name
  assert kernel_impls(models.create_model(tiny_config, 10)) == [name] * 6


def kernel_impls(model, size=8) -> list[str]:
  """The impl of every depthwise and pointwise layer, in call order."""
  seen = []

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, (layers.DilatedDepthwiseConv,
                                   layers.PointwiseConv)):
      seen.append(context.module.impl)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    jax.eval_shape(lambda: model.init(jax.random.key(0),
                                      jnp.zeros((1, size, size, 3)),
                                      train=False))
  return seen


def test_one_dilation_per_module():
  config = load_config('cifar10_mixed')
  model = models.create_model(config, num_classes=10)
  assert model.dilations == (0, 1, 0, 1, 0, 1, 0, 0, 0)
  assert models.create_model(load_config('cifar10'), 10).dilations == (2,) * 9


@pytest.mark.parametrize('name', ['cifar10', 'cifar10_recipe',
                                  'cifar10_recipe_mixed', 'cifar10_mixed'])
def test_cifar10_configs_keep_the_papers_size(name):
  """Every CIFAR-10 layout, ours included, stays the paper's 3.1 M network."""
  config = load_config(name)
  model = models.create_model(config, num_classes=10)
  variables = _cifar10_variable_shapes(model)
  assert abs(_param_count(variables['params']) - 3.1e6) <= 0.1e6
  assert len(model.dilations) == 9
