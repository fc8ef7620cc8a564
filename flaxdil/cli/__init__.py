"""The command-line room: what bin/main.py (`flaxdil`, `python -m flaxdil`)
does.

  main.py   its flags and entry point
  modes.py  train, evaluate, inspect, export: functions tests can call
  flags.py  bad flags and config files as one line and exit code 2
"""
