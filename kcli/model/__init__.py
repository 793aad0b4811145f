"""config.model -> a compiled keras.Model: Sequential stacks and layers on table columns (build), graphs (graph),
layer and application look-ups (layers, classes), compile (compile), labels and outputs checked against the model
(outputs), table inputs and preprocessing (table_inputs, preprocess), warm starts (warmstart), a run's model loaded
back (load) and the model described as data (summary, summary_text).
"""
