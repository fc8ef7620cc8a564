"""flaxdil.cores: a child started beside others pins itself to the cores
its parent names, before JAX starts its threads."""

import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT
from flaxdil import cores
from flaxdil.errors import ConfigError

# Every thread's cores once JAX has started its CPU client: pinning only
# the calling thread would leave XLA's pool on every core.
_THREADS_AFTER_JAX = (
    'import json, os; from flaxdil import cores; cores.pin_from_environment(); '
    'import jax; jax.devices(); jax.numpy.ones(8).sum().block_until_ready(); '
    'tasks = os.listdir("/proc/self/task"); '
    'print(json.dumps([sorted(os.sched_getaffinity(int(t))) for t in tasks]))')


def test_a_child_and_all_its_threads_run_on_the_cores_it_is_given():
  first = min(os.sched_getaffinity(0))
  result = subprocess.run(
      [sys.executable, '-c', _THREADS_AFTER_JAX], cwd=ROOT,
      env=cores.environment_pinned_to({first}), capture_output=True,
      text=True, timeout=120, check=True)
  threads = json.loads(result.stdout)
  assert len(threads) > 1 and all(t == [first] for t in threads), threads


def test_without_the_variable_nothing_is_pinned(monkeypatch):
  monkeypatch.delenv(cores.VARIABLE, raising=False)
  before = os.sched_getaffinity(0)
  cores.pin_from_environment()
  assert os.sched_getaffinity(0) == before


@pytest.mark.parametrize('given', ['zero', '0,', '99999'])
def test_a_bad_variable_is_one_clear_error(given, monkeypatch):
  monkeypatch.setenv(cores.VARIABLE, given)
  before = os.sched_getaffinity(0)
  with pytest.raises(ConfigError, match=rf'{cores.VARIABLE}=.*Fix: give'):
    cores.pin_from_environment()
  assert os.sched_getaffinity(0) == before


def test_the_command_line_refuses_a_bad_variable_in_one_line():
  result = subprocess.run(
      [sys.executable, '-m', 'flaxdil', '--mode=inspect',
       '--config=configs/tiny.py'], cwd=ROOT, capture_output=True, text=True,
      env=dict(os.environ, **{cores.VARIABLE: 'zero'}), timeout=120)
  lines = result.stderr.strip().splitlines()
  assert result.returncode == 2 and len(lines) == 1, result.stderr
  assert lines[0].startswith(f'error: {cores.VARIABLE}=\'zero\'')
