"""The command line: Typer commands that parse arguments, call kcli.api, draw with kcli.output and map errors to
exit codes.

app.py holds the app and the order of --help; each command group lives in its own module (train, use, runs, project,
sweep), with the shared option types and the error-to-exit-code wrapper in common.py.
"""
