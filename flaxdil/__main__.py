"""python -m flaxdil: the command line of flaxdil/cli/main.py."""

from flaxdil.cli import main

main.main()
