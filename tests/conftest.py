"""Test set-up: two fake CPU devices, so pmap runs over more than one.

XLA reads the flag once, when JAX starts, so it is set before any test
imports JAX.

Tiers: tests marked `slow` train end to end or start subprocesses (each
re-imports JAX and TFDS). The inner loop is
  python -m pytest -q -m "not slow" tests
and the whole suite (README, .ci/run) is python -m pytest -q tests.
"""

import os
import pathlib
import sys

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                           + ' --xla_force_host_platform_device_count=2')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')

import jax  # noqa: E402
import pytest  # noqa: E402

# Tests build the same few programs many times (every train_and_evaluate
# call jits its own steps); a compilation cache shared by the session
# compiles each once.
jax.config.update('jax_compilation_cache_dir',
                  os.path.join(os.environ.get('TMPDIR', '/tmp'),
                               f'flaxdil-test-jax-cache-{os.getuid()}'))
jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.2)

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED_TFDS = ROOT.parent / 'shared' / 'tensorflow_datasets'


def pytest_configure(config):
  config.addinivalue_line(
      'markers', 'slow: trains end to end or runs a subprocess (deselect with '
      '-m "not slow" for the fast inner loop)')


@pytest.fixture
def tiny_config():
  from configs import tiny
  return tiny.get_config()


@pytest.fixture
def shared_tfds_dir():
  if not (SHARED_TFDS / 'cifar10').is_dir():
    pytest.skip(f'real CIFAR-10 not found at {SHARED_TFDS}')
  return str(SHARED_TFDS)


@pytest.fixture
def mock_cifar():
  """TFDS's mock data in place of cifar10: 150 random examples per split."""
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=150):
    yield
