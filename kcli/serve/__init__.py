"""`kcli serve RUN [RUN ...]`: finished runs behind TF Serving's REST API and the Open Inference Protocol v2.

model.py loads a run (trust rules of `kcli predict`) and turns request columns into model inputs with
predict's own functions; protocols.py reads and writes the two wire formats; batching.py merges concurrent
requests into one call of a warm compiled function; app.py holds the routes; server.py binds, runs and reloads.
"""

EXTRA_HINT = "kcli serve needs the serve extra: pip install 'kcli-keras[serve]'"
