"""Several processes, one run: JAX's multi-process runtime (jax.distributed).

One process per host (or per GPU), each driving its local devices; the
pmapped steps run over the devices of all processes, and their collectives
(pmean, psum, BatchNorm's statistics) cross processes: over gloo on CPU,
NCCL on GPU, ICI/DCN on TPU. Nothing here is home-made: JAX's coordination
service connects the processes, watches them (heartbeats) and carries the
preemption notice; this module only decides when to start it, with which
timeouts, and gives the run a few agreements (who writes, who locks).

Without any of the settings below a run stays single-process and exactly as
before.
"""

from __future__ import annotations

import contextlib
import os
import sys

import jax
import numpy as np

from flaxdil.errors import ConfigError, FlaxdilError, ProcessLost

# A process that stops answering (killed, its host lost) is declared dead
# after this long without a heartbeat; every other process then fails with
# an error instead of waiting forever inside a collective. JAX's default is
# 100 s; heartbeats run on their own thread, so long compiles do not count.
HEARTBEAT_TIMEOUT_SECONDS = 30
# How long process 0's coordinator and the others wait for each other at
# start (a scheduler may start processes minutes apart) and at exit.
INITIALIZATION_TIMEOUT_SECONDS = 300
SHUTDOWN_TIMEOUT_SECONDS = 60

_ENV = {'coordinator_address': 'JAX_COORDINATOR_ADDRESS',
        'num_processes': 'JAX_NUM_PROCESSES',
        'process_id': 'JAX_PROCESS_ID'}


def _cluster_process_count() -> int:
  """How many processes a scheduler JAX knows (SLURM, TPU pods, Open MPI,
  Kubernetes) started for this job; 1 outside one."""
  from jax._src import clusters  # JAX's own detection, as initialize() uses.
  for env in clusters.ClusterEnv._cluster_types:
    if not env.opt_in_only_method and env.is_env_present():
      try:
        return int(env.get_process_count())
      except Exception:  # Present but unreadable: leave it to the user.
        return 1
  return 1


def initialize(coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None) -> bool:
  """Starts jax.distributed where a multi-process run is asked for; returns
  whether the run has several processes.

  Asked for by the three arguments (bin/main.py's flags), else by the
  environment variables JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
  JAX_PROCESS_ID, else by a cluster JAX detects that started several
  processes (then JAX finds all three itself). Call before JAX computes
  anything.
  """
  given = {'coordinator_address': coordinator_address,
           'num_processes': num_processes, 'process_id': process_id}
  for name, variable in _ENV.items():
    if given[name] is None and os.environ.get(variable):
      given[name] = os.environ[variable]
  named = {k: v for k, v in given.items() if v is not None}
  if not named and _cluster_process_count() <= 1:
    return False
  if named and len(named) < 3:
    missing = [k for k in given if given[k] is None]
    raise ConfigError(
        f'a multi-process run needs all of --coordinator_address, '
        f'--num_processes and --process_id; missing: '
        f'{", ".join("--" + m for m in missing)} (or set '
        f'{", ".join(_ENV[m] for m in missing)}).')
  try:
    num = int(given['num_processes']) if named else None
    index = int(given['process_id']) if named else None
  except ValueError:
    raise ConfigError(f'--num_processes={given["num_processes"]!r} and '
                      f'--process_id={given["process_id"]!r} must be '
                      'integers.') from None
  if named and not 0 <= index < num:
    raise ConfigError(f'--process_id={index} must be in [0, '
                      f'--num_processes={num}).')
  if named and ':' not in str(given['coordinator_address']):
    raise ConfigError(f'--coordinator_address={given["coordinator_address"]!r}'
                      ' must be HOST:PORT (process 0\'s host and a free port).')
  try:
    jax.distributed.initialize(
        coordinator_address=given['coordinator_address'],
        num_processes=num, process_id=index,
        initialization_timeout=INITIALIZATION_TIMEOUT_SECONDS,
        heartbeat_timeout_seconds=HEARTBEAT_TIMEOUT_SECONDS,
        shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_SECONDS)
  except Exception as e:  # Unreachable coordinator, timeout, port in use.
    raise FlaxdilError(
        f'could not join the multi-process run at '
        f'{given["coordinator_address"] or "the detected coordinator"} '
        f'({type(e).__name__}: {str(e).strip().splitlines()[0][:300]}). Fix: '
        'start every process with the same --coordinator_address (process '
        '0\'s host and a free port) and --num_processes, each with its own '
        '--process_id.') from None
  return jax.process_count() > 1


def is_primary() -> bool:
  """Process 0: the one that writes logs, metrics and results."""
  return jax.process_index() == 0


def quiet_unless_primary() -> None:
  """Sends the progress lines of every process but 0 to /dev/null (errors,
  on stderr, still come from every process)."""
  if not is_primary():
    sys.stdout = open(os.devnull, 'w')


def process_0_decides(decision: bool) -> bool:
  """Process 0's `decision`, on every process (a collective: every process
  must call it at the same point)."""
  if jax.process_count() == 1:
    return decision
  from jax.experimental import multihost_utils
  return bool(multihost_utils.broadcast_one_to_all(np.asarray(decision)))


def _client():
  from jax._src import distributed  # The coordination service's client.
  return distributed.global_state.client


def agree(name: str, compute) -> None:
  """Runs `compute()` on process 0 and makes every process share its
  outcome: each returns normally, or each raises process 0's FlaxdilError.
  (Other processes never call `compute`; they may pass None.)

  For decisions only one process may take (the workdir lock), so that a
  refusal stops every process at once with the same message, rather than
  leaving the others to wait in a collective.
  """
  if jax.process_count() == 1:
    compute()
    return
  key = f'flaxdil/{name}'
  if is_primary():
    try:
      compute()
    except FlaxdilError as e:
      _client().key_value_set(key, f'{type(e).__name__}\n{e}')
      raise
    _client().key_value_set(key, 'ok')
    return
  outcome = _client().blocking_key_value_get(
      key, 1000 * INITIALIZATION_TIMEOUT_SECONDS)
  if outcome != 'ok':
    kind, message = outcome.split('\n', 1)
    from flaxdil import errors
    raise getattr(errors, kind, FlaxdilError)(message)


def barrier(name: str) -> None:
  """Waits until every process got here (no-op with one process)."""
  if jax.process_count() > 1:
    _client().wait_at_barrier(f'flaxdil/{name}',
                              1000 * INITIALIZATION_TIMEOUT_SECONDS)


# The status codes of XLA's runtime errors ("UNKNOWN: Gloo all-reduce
# failed: ...") that a lost peer produces.
_LOST_PEER_STATUSES = ('UNKNOWN', 'UNAVAILABLE', 'INTERNAL', 'ABORTED',
                       'CANCELLED', 'DEADLINE_EXCEEDED', 'FAILED_PRECONDITION')


def is_collective_failure(error: BaseException) -> bool:
  """Whether `error` is XLA's runtime reporting a failed collective or
  coordination call, as a lost process makes them fail.

  Mostly a jax.errors.JaxRuntimeError, but not only: the same gloo failure
  inside multihost_utils.broadcast_one_to_all reaches Python as a
  ValueError carrying the runtime's status ("UNKNOWN: Gloo all-reduce
  failed: ... Connection reset by peer"; jax 0.10.2 on CPU), so the status
  prefix is what is recognised.
  """
  if isinstance(error, jax.errors.JaxRuntimeError):
    return True
  if not isinstance(error, (ValueError, RuntimeError)):
    return False
  status = str(error).lstrip().split(':', 1)[0]
  return status in _LOST_PEER_STATUSES


@contextlib.contextmanager
def loss_is_an_error(store):
  """With several processes, a failed collective almost always means that
  another process is gone: one clear error (errors.ProcessLost) instead of
  a runtime traceback. `store`: the run's CheckpointStore, for its latest
  checkpoint."""
  try:
    yield
  except (jax.errors.JaxRuntimeError, ValueError, RuntimeError) as e:
    if jax.process_count() == 1 or not is_collective_failure(e):
      raise
    raise ProcessLost(
        f'process {jax.process_index()} of {jax.process_count()}: a '
        f'collective failed ({str(e).strip().splitlines()[0][:200]}); another '
        'process of this run has most likely stopped (see its log). The last '
        f'checkpoint is step {store.latest_step()} in {store.directory}. Fix: '
        'restart every process with the same command to resume.') from None
