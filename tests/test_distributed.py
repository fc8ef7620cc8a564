"""When a run asks for several processes, and what it must then say.

The processes themselves are in test_multiprocess.py (slow tier); these
check the decision, in-process, without ever starting jax.processes.
"""

import pytest

from flaxdil.distributed import processes
from flaxdil.errors import ConfigError


@pytest.fixture(autouse=True)
def no_cluster(monkeypatch):
  for variable in ('JAX_COORDINATOR_ADDRESS', 'JAX_NUM_PROCESSES',
                   'JAX_PROCESS_ID', 'SLURM_JOB_ID', 'OMPI_MCA_orte_hnp_uri'):
    monkeypatch.delenv(variable, raising=False)


def test_without_settings_the_run_stays_single_process():
  assert processes.initialize() is False
  assert processes.is_primary()
  processes.barrier('nothing-to-wait-for')
  outcome = []
  processes.agree('decision', lambda: outcome.append('ran'))
  assert outcome == ['ran']


@pytest.mark.parametrize('args,env,message', [
    ({'num_processes': 2, 'process_id': 0}, {},
     'missing: --coordinator_address (or set JAX_COORDINATOR_ADDRESS)'),
    ({}, {'JAX_COORDINATOR_ADDRESS': 'localhost:1234'},
     'missing: --num_processes, --process_id'),
    ({'coordinator_address': 'localhost:1', 'num_processes': 2,
      'process_id': 5}, {}, '--process_id=5 must be in [0, --num_processes=2)'),
    ({'coordinator_address': 'localhost', 'num_processes': 2,
      'process_id': 0}, {}, 'must be HOST:PORT'),
    ({}, {'JAX_COORDINATOR_ADDRESS': 'h:1', 'JAX_NUM_PROCESSES': 'two',
          'JAX_PROCESS_ID': '0'}, 'must be integers'),
])
def test_an_incomplete_multi_process_request_is_a_clear_error(
    monkeypatch, args, env, message):
  for variable, value in env.items():
    monkeypatch.setenv(variable, value)
  with pytest.raises(ConfigError, match=None) as error:
    processes.initialize(**args)
  assert message in str(error.value)


def test_a_slurm_job_of_one_task_stays_single_process(monkeypatch):
  monkeypatch.setenv('SLURM_JOB_ID', '7')
  monkeypatch.setenv('SLURM_NTASKS', '1')
  monkeypatch.setenv('SLURM_PROCID', '0')
  monkeypatch.setenv('SLURM_LOCALID', '0')
  monkeypatch.setenv('SLURM_STEP_NODELIST', 'node1')
  assert processes.initialize() is False


@pytest.mark.parametrize('error,lost', [
    # What a killed peer made broadcast_one_to_all raise in CI (jax 0.10.2).
    (ValueError('UNKNOWN: Gloo all-reduce failed: [pair.cc:538] Read error '
                '[127.0.0.1]:13218: Connection reset by peer'), True),
    (RuntimeError('UNAVAILABLE: Task 1 heartbeat timeout'), True),
    (ValueError('operands could not be broadcast together'), False),
    (RuntimeError('Unknown: not a status prefix'), False),
    (KeyError('UNKNOWN: never a runtime status'), False),
])
def test_a_lost_peer_is_recognised_whatever_class_carries_it(error, lost):
  assert processes.is_collective_failure(error) is lost
