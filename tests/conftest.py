"""Test set-up: two fake CPU devices, so pmap runs over more than one.

XLA reads the flag once, when JAX starts, so it is set before any test
imports JAX.
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


@pytest.fixture
def tiny_config():
  from configs import tiny
  return tiny.get_config()


@pytest.fixture
def shared_tfds_dir():
  if not (SHARED_TFDS / 'cifar10').is_dir():
    pytest.skip(f'real CIFAR-10 not found at {SHARED_TFDS}')
  return str(SHARED_TFDS)
