"""Fine-tuning (config.init_from, config.freeze_backbone): what is loaded,
what is re-initialised, what is refused, and that only a new run is
seeded."""

import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import load_config
from flaxdil import models
from flaxdil.config import rules
from flaxdil.errors import ConfigError
from flaxdil.training import evaluation, init_from, loop


def _variables(config, num_classes):
  model = models.create_model(config, num_classes)
  init = jax.jit(lambda key: model.init(key, jnp.zeros((1, 32, 32, 3)),
                                        train=False))  # One program.
  return jax.tree_util.tree_map(np.asarray, init(jax.random.key(num_classes)))


def test_matching_arrays_load_and_another_head_is_re_initialised():
  config = load_config('tiny')
  source, fresh = _variables(config, 10), _variables(config, 20)
  merged, seed = init_from.merge(fresh, source, 'the source')
  flat = lambda tree: dict(jax.tree_util.tree_flatten_with_path(tree)[0])
  for path, value in flat(merged).items():
    in_head = path[1].key == 'classifier'
    expected = fresh if in_head else source
    np.testing.assert_array_equal(value, flat(expected)[path])
  assert seed.fresh == ['params/classifier/bias (20,) (source (10,))',
                        'params/classifier/kernel (16, 20) (source (16, 10))']
  assert 'the source: ' in init_from.describe(seed)


def test_any_other_difference_is_refused_naming_the_layer():
  config = load_config('tiny')
  source = _variables(config, 10)
  wider = load_config('tiny')
  wider.widths = tuple(2 * w for w in config.widths)
  with pytest.raises(ConfigError, match=r"layer 'block1/bn' has shape"):
    init_from.merge(_variables(wider, 10), source, 'src')
  deeper = load_config('tiny')
  deeper.widths = (*config.widths, config.widths[-1])
  deeper.strides = (*config.strides, 1)
  with pytest.raises(ConfigError, match=r'has no params/block\d+/'):
    init_from.merge(_variables(deeper, 10), source, 'src')
  with pytest.raises(ConfigError, match='has layers this network lacks'):
    init_from.merge(source, _variables(deeper, 10), 'src')


def test_freezing_needs_something_to_freeze():
  config = load_config('tiny')
  config.freeze_backbone = True
  with pytest.raises(ConfigError, match='init_from is empty'):
    rules.check_fields(config)


@pytest.mark.slow
def test_a_run_starts_from_another_and_resumes_without_it(tmp_path,
                                                          mock_cifar):
  source_config = load_config('tiny')
  source_config.num_train_steps = 4
  source_dir = str(tmp_path / 'source')
  loop.train_and_evaluate(source_config, source_dir)
  source = evaluation.restore_state(source_config, source_dir).state

  # A source that is no workdir: refused before the workdir exists.
  config = load_config('tiny')
  config.num_train_steps = 3
  config.init_from = str(tmp_path / 'nothing')
  with pytest.raises(ConfigError, match='neither a training workdir'):
    loop.train_and_evaluate(config, str(tmp_path / 'tuned'))
  assert not os.path.exists(tmp_path / 'tuned')

  # A linear probe: the backbone stays the source's, bit for bit.
  config.init_from = source_dir
  config.freeze_backbone = True
  tuned_dir = str(tmp_path / 'tuned')
  loop.train_and_evaluate(config, tuned_dir)
  tuned = evaluation.restore_state(config, tuned_dir).state
  for block in (k for k in source.params if k != 'classifier'):
    for a, b in zip(jax.tree_util.tree_leaves(source.params[block]),
                    jax.tree_util.tree_leaves(tuned.params[block])):
      np.testing.assert_array_equal(a, b)
  assert not np.array_equal(source.params['classifier']['kernel'],
                            tuned.params['classifier']['kernel'])

  # A resume restores its own checkpoint: the source may be gone.
  shutil.rmtree(source_dir)
  config.num_train_steps = 5
  summary = loop.train_and_evaluate(config, tuned_dir)
  assert summary['final_step'] == 5
