"""Datasets shipped with kcli (see README: Data and licenses); their names and files: config.source_rules.BUILTIN."""
