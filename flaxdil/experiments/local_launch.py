"""Several processes of flaxdil's command line on this machine, joined by
jax.distributed: for tests, benchmarks and trying multi-process training
without a cluster.

Each process gets its own fake CPU devices (JAX_NUM_CPU_DEVICES) and its
output goes to a log file; `LocalRun.kill` ends what is left, so a caller
can always clean up.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

def free_port() -> int:
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


class LocalRun:
  """`processes` processes of `command` + args, `devices` CPU devices each
  (processes = 1: a plain single-process run, no jax.distributed).

  command: what runs the command line, by default [python, -m, flaxdil];
  cwd: where (relative config paths are read from there), by default here.
  """

  def __init__(self, processes: int, devices: int, args: list[str],
               log_dir: str, name: str = 'run',
               command: list[str] | None = None, cwd: str | None = None):
    command = command or [sys.executable, '-m', 'flaxdil']
    port = free_port()
    env = dict(os.environ, JAX_NUM_CPU_DEVICES=str(devices),
               JAX_PLATFORMS='cpu', PYTHONUNBUFFERED='1')
    # Another device count set through XLA's flag would win over ours.
    env['XLA_FLAGS'] = ' '.join(
        f for f in env.get('XLA_FLAGS', '').split()
        if not f.startswith('--xla_force_host_platform_device_count'))
    self.logs = [os.path.join(log_dir, f'{name}.{i}.log')
                 for i in range(processes)]
    self.processes = []
    for i, log in enumerate(self.logs):
      joining = ([f'--coordinator_address=localhost:{port}',
                  f'--num_processes={processes}', f'--process_id={i}']
                 if processes > 1 else [])
      with open(log, 'w') as out:
        self.processes.append(subprocess.Popen(
            [*command, *args, *joining], cwd=cwd, env=env, stdout=out,
            stderr=subprocess.STDOUT))

  def wait(self, timeout: float) -> list[int]:
    """Exit codes; on timeout every process is killed and TimeoutError
    raised with their output."""
    deadline = time.monotonic() + timeout
    try:
      return [p.wait(max(deadline - time.monotonic(), 0.1))
              for p in self.processes]
    except subprocess.TimeoutExpired:
      self.kill()
      raise TimeoutError(f'processes still running after {timeout} s:\n'
                         + self.output()) from None

  def wait_for(self, text: str, timeout: float, process: int = 0) -> None:
    """Until `text` is in a process's output; TimeoutError (and everything
    killed) if it does not come or the process ends first."""
    deadline = time.monotonic() + timeout
    while text not in self.output(process):
      if (time.monotonic() > deadline
          or self.processes[process].poll() is not None):
        self.kill()
        raise TimeoutError(f'{text!r} not seen within {timeout} s:\n'
                           + self.output())
      time.sleep(0.2)

  def kill(self) -> None:
    for p in self.processes:
      if p.poll() is None:
        p.kill()
        p.wait()

  def output(self, process: int | None = None) -> str:
    logs = self.logs if process is None else [self.logs[process]]
    text = []
    for log in logs:
      with open(log) as f:
        text.append(f.read() if process is not None
                    else f'--- {os.path.basename(log)}\n{f.read()}')
    return '\n'.join(text)
