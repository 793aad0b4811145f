"""`kcli sweep`: the sweep section (spec) and its checks (checks), the Optuna study (study), trial processes (runner),
sweep.json (record) and the command itself (search).
"""
