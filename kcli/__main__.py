"""`python -m kcli` runs the command-line app."""

from kcli.cli import main

main()
