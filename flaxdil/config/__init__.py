"""The config room: configs as code (ml_collections), changed by arguments
and checked once.

  defaults.py  every field, its default and what it means
  args.py      'FIELD=VALUE,...' arguments and copies with fields replaced
  files.py     config files loaded by path, 'configs/x.py:ARG' as --config=
  rules.py     every field's allowed values, the rules between fields, what
               the data and devices demand, what a resume may change

defaults, args and files import nothing heavy (config files import them);
rules imports the model registry and the dataset's metadata to check them.
"""
