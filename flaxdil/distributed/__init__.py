"""The distributed room: one run over several processes, and stopping it
cleanly.

  processes.py   joining a multi-process run (jax.distributed), who writes,
                 agreements between processes
  preemption.py  SIGTERM/SIGINT: save the step, stop; across processes at
                 JAX's preemption sync point
"""
