"""The training room: the pure steps, where they run, and the loop.

  steps.py        TrainState, optimizer, schedule, train_step, eval_step,
                  written against the pmap axis name
  devices.py      placing arrays; PmappedModel: a checked config's model
                  with its steps pmapped over the devices
  periodic.py     when a periodic action (log, validate, save) is due
  profiling.py    a jax.profiler window over training steps
  metrics_log.py  progress lines, metrics.jsonl, TensorBoard; the steps'
                  metrics read from the devices where they are needed
  evaluation.py   evaluation over a whole split; restoring a checkpoint
  setup.py        a run's data, schedule, state and session record
  loop.py         train_and_evaluate(config, workdir)
"""
