"""The config room: configs as code (ml_collections), changed by arguments
and checked once.

  defaults.py  every field in one table: its default, what it means, its
               allowed values, what a resume may do with it
  args.py      'FIELD=VALUE,...' arguments and copies with fields replaced
  files.py     config files loaded by path, 'configs/x.py:ARG' as --config=
  rules.py     each field checked against its row, the rules between
               fields, what the data and devices demand
  budget.py    the run's step counts, sentinels resolved; the schedule

defaults, args and files import nothing heavy (config files import them);
rules imports the model registry and the dataset's metadata to check them.
"""
