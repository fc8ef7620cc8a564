"""Table 1's baselines: published parameter counts, CIFAR forms, inspect."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from configs import baselines as baselines_config
from flaxdil import cli, models
from flaxdil.errors import ConfigError
from flaxdil.models import baselines


def _count(model, size):
  variables = jax.eval_shape(lambda: model.init(
      jax.random.key(0), jnp.zeros((1, size, size, 3)), train=False))
  return sum(int(np.prod(x.shape))
             for x in jax.tree_util.tree_leaves(variables['params']))


# As published at 224×224 with 1000 classes. Convolutions have no bias and
# BatchNorm adds a scale and an offset per channel, hence the small excess
# over the papers' own counts (VGG16: 138,357,544 + 4,224; SqueezeNet:
# 1,248,424 + 2,976).
@pytest.mark.parametrize('name,params', [
    ('mobilenet_v1', 4_231_976), ('squeezenet', 1_251_400),
    ('googlenet', 7_005_832), ('vgg16', 138_361_768)])
def test_imagenet_forms_have_the_published_parameter_counts(name, params):
  model = baselines.create(name, 1000, 'imagenet', None, 0.9,
                           models.dilated.LAX, jnp.float32)
  assert _count(model, 224) == params
  assert abs(params - baselines.PAPER_PARAMS[name]) / params < 0.04


@pytest.mark.parametrize('name', sorted(baselines.BASELINES))
def test_cifar_forms_classify_32x32_images(name):
  config = baselines_config.get_config(f'model={name}')
  model = models.create_model(config, 10)

  def forward(images):
    variables = model.init(jax.random.key(1), images, train=False)
    return model.apply(variables, images, train=True,
                       mutable=['batch_stats'])[0]

  # Shapes only: compiling four large networks would dominate the suite;
  # the MobileNet blocks' arithmetic is the dilated module's, tested there.
  logits = jax.eval_shape(forward, jnp.zeros((2, 32, 32, 3)))
  assert logits.shape == (2, 10) and logits.dtype == jnp.float32


def test_mobilenet_takes_the_configured_kernels():
  config = baselines_config.get_config('model=mobilenet_v1,conv_impl=fast')
  assert models.create_model(config, 10).impl == models.dilated.FAST_CPU
  config.conv_impl = 'lax'
  assert models.create_model(config, 10).impl == models.dilated.LAX


def test_inspect_reports_both_forms(capsys):
  summary = cli.inspect_model(baselines_config.get_config('model=vgg16'))
  assert summary['total_params'] == 14_724_042
  assert summary['imagenet_reference']['total_params'] == 138_361_768
  assert summary['paper_params'] == 138e6
  assert 'As published (224x224 input, 1000-class head): 138,361,768' in (
      capsys.readouterr().out)


def test_unknown_model_and_stem_are_refused():
  with pytest.raises(ConfigError, match='unknown model'):
    models.create_model(baselines_config.get_config('model=resnet'), 10)
  with pytest.raises(ConfigError, match='config.stem'):
    models.create_model(baselines_config.get_config('stem=tiny'), 10)
