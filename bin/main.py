"""flaxdil's command line: `python bin/main.py --help` (flaxdil/cli/main.py).

The same command as `flaxdil` and `python -m flaxdil` once installed.
"""

from flaxdil.cli import main

if __name__ == '__main__':
  main.main()
