"""python -m imgclf.cli (and torchrun -m imgclf.cli) run the command."""

from . import main

main()
