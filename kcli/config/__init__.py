"""A config file on its way in: YAML with line numbers (source) -> extends (compose) and --set (overrides) ->
validated (models, source_rules) -> resolved (resolve: every default, once; paths: every relative path, once).

Also here: did-you-mean (suggest), key paths (keys), locating an error in its file (loading), Keras names read from
Keras's source without TensorFlow (keras_names) and the rules applied to them (keras_rules), the static checks of
`kcli validate` (check), the JSON Schema (schema), the user's code (code) and the model's inputs and outputs as the
config names them (model_io).
"""
