"""The run folder: its layout and new folders that never overwrite (layout), run.json and the JSON files (records),
finding runs (find), training state files (state), saved models (artifacts) and their verification (verify), trust
of a received run (trust) and its pictures (pictures).
"""
