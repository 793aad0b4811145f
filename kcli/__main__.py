"""`python -m kcli` runs the command-line app."""

from kcli.cli.app import main

if __name__ == "__main__":
    main()
