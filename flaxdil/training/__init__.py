"""The training room, in the order one step's data flows:

  steps.py        the run's keys; TrainState, optimizer; the one
                  train_step (state, batch, augment_key) and train_steps,
                  K of them in a scan; eval_step; all against the pmap
                  axis name
  devices.py      the pmap axis's devices and this process's; rows shaped
                  (local devices, ...) and placed
  inputs.py       Pipeline: device or stream, each step's inputs, the
                  hold-out's and any split's evaluation batches
  periodic.py     when a periodic action (log, validate, save) is due
  profiling.py    a jax.profiler window over training steps
  metrics_log.py  progress lines, metrics.jsonl, TensorBoard; the steps'
                  metrics held until they are read
  evaluation.py   evaluation over a whole split; restoring a checkpoint
  setup.py        a run's budget, schedule, state, compiled steps, record
  loop.py         train_and_evaluate(config, workdir)
"""
