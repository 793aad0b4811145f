"""One training run: prepare (config, data, model), resume, fit with callbacks and checkpoints, save and verify the
artifacts, MLflow tracking, and a sweep trial's reports (train.py holds one run from start to end).
"""
