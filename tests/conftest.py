"""Test set-up: two fake CPU devices, so pmap runs over more than one.

XLA reads the flag once, when JAX starts, so it is set before any test
imports JAX.

Tiers: tests marked `slow` train end to end or start subprocesses (each
re-imports JAX and TFDS). The inner loop is
  python -m pytest -q -m "not slow" tests
and the whole suite (README, .ci/run) is python -m pytest -q tests. Both
run on one pytest-xdist worker per core (pyproject.toml); -n 0 runs in
one process.
"""

import os
import pathlib
import subprocess
import sys

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                           + ' --xla_force_host_platform_device_count=2')
os.environ.setdefault('JAX_PLATFORMS', 'cpu')
# Tests build the same few programs many times (every train_and_evaluate
# call jits its own steps, and a fault test starts the same run seven
# times); a compilation cache shared by the session and, through the
# environment, by every subprocess it starts compiles each once.
os.environ.setdefault('JAX_COMPILATION_CACHE_DIR', os.path.join(
    os.environ.get('TMPDIR', '/tmp'), f'flaxdil-test-jax-cache-{os.getuid()}'))
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.2')

import pytest  # noqa: E402

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_TFDS = ROOT.parent / 'shared' / 'tensorflow_datasets'


# The tests this session collected, before -m or -k deselected any: how
# many, and from which files (tests/test_docs.py holds the README's count
# to the whole suite's).
COLLECTED = pytest.StashKey[tuple[int, frozenset]]()


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(session, config, items):
  config.stash[COLLECTED] = (len(items),
                             frozenset(item.path.name for item in items))
  # The slow tests first (a stable sort: file order otherwise), so that the
  # workers end on short tests instead of one waiting on a 40-s test.
  items.sort(key=lambda item: item.get_closest_marker('slow') is None)


def pytest_xdist_auto_num_workers(config):
  # `-n auto` (pyproject.toml): the cores this process may run on, which a
  # scheduler or taskset may have narrowed; psutil's count ignores that.
  return len(os.sched_getaffinity(0))


def pytest_sessionstart(session):
  # The command-line tests run flaxdil in subprocesses, which see only what
  # is installed: one clear line instead of many failures.
  found = subprocess.run([sys.executable, '-c', 'import flaxdil'],
                         cwd='/', capture_output=True)
  if found.returncode:
    pytest.exit('flaxdil is not installed in this environment. Fix: pip '
                'install -r requirements.txt -e . (README, set-up).', 2)


def load_config(name: str, arg: str | None = None):
  """configs/NAME.py's config (with its get_config argument), as --config=
  loads it."""
  from flaxdil.config import files
  path = str(ROOT / 'configs' / f'{name}.py')
  return files.load(f'{path}:{arg}' if arg else path)


@pytest.fixture
def tiny_config():
  return load_config('tiny')


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
