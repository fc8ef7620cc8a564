"""The fast kernels compute exactly what the lax reference computes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from flaxdil import models
from flaxdil.models import depthwise, layers


def _value_and_grads(conv, x, kernel, cotangent, stride, rate):
  y, vjp = jax.vjp(lambda x, k: conv(x, k, stride, rate), x, kernel)
  return (y,) + vjp(cotangent)


# Odd sizes (stride 2 rounds up) and a map smaller than the filter span.
@pytest.mark.parametrize('shape', [(3, 7, 9, 5), (1, 5, 4, 2)])
@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('rate', [1, 3, 5, 7])  # δ = 0..3
def test_sliced_matches_lax_forward_and_gradients(shape, stride, rate):
  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(keys[0], shape)
  kernel = jax.random.normal(keys[1], (3, 3, 1, shape[-1]))
  out_shape = depthwise.depthwise_lax(x, kernel, stride, rate).shape
  cotangent = jax.random.normal(keys[2], out_shape)
  reference = _value_and_grads(depthwise.depthwise_lax, x, kernel, cotangent,
                               stride, rate)
  fast = jax.jit(_value_and_grads, static_argnums=(0, 4, 5))(
      depthwise.depthwise_sliced, x, kernel, cotangent, stride, rate)
  for name, want, got in zip(('y', 'dx', 'dkernel'), reference, fast):
    assert got.shape == want.shape, name
    scale = float(jnp.max(jnp.abs(want)))
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * scale, err_msg=name)


def test_skipped_taps_read_only_padding():
  # Rate 7 on a 4×4 map: every off-centre tap falls outside the image.
  _, _, taps = depthwise.tap_windows(4, 4, 1, 7)
  assert [(a, b) for a, b, _, _ in taps] == [(1, 1)]
  _, _, taps = depthwise.tap_windows(8, 8, 1, 3)
  assert len(taps) == 9


def test_whole_train_step_gradients_agree_in_float64():
  """Same params, same batch: lax and fast give the same loss and grads."""
  config = load_config('tiny')
  labels = jnp.arange(4) % 10
  results = []
  with jax.enable_x64():
    images = jax.random.normal(jax.random.key(1), (4, 9, 11, 3), jnp.float64)
    for impl in ('lax', 'fast'):
      config.conv_impl = impl
      model = models.create_model(config, num_classes=10).clone(
          layers=layers.bind(impl, jnp.float64))
      variables = jax.jit(functools.partial(model.init, train=False))(
          jax.random.key(0), images[:1])
      params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64),
                                      variables['params'])

      def loss(params):
        logits, _ = model.apply(
            {'params': params, 'batch_stats': variables['batch_stats']},
            images, train=True, mutable=['batch_stats'])
        return -jnp.mean(jnp.take_along_axis(
            jax.nn.log_softmax(logits), labels[:, None], 1))

      results.append(jax.jit(jax.value_and_grad(loss))(params))
  (loss_lax, grads_lax), (loss_fast, grads_fast) = results
  np.testing.assert_allclose(loss_fast, loss_lax, rtol=1e-12)
  for want, got in zip(jax.tree_util.tree_leaves(grads_lax),
                       jax.tree_util.tree_leaves(grads_fast)):
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
