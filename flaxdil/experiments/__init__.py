"""The experiments room: the paper's tables and the project's measurements.

  paper.py         the published figures flaxdil compares with
  sweep.py         the paper's tables as resumable sweeps of trainings
  report.py        tables and plots from workdirs
  benchmark.py     speed of the train step, eval step and batch-1 inference
  op_profile.py    a traced train step's time by network part and pass
  faults.py        a run interrupted N times against an uninterrupted one
  local_launch.py  several local processes of one run (tests, benchmarks)
"""
