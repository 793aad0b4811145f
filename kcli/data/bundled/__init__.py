"""Datasets shipped with kcli (see README: Data and licenses)."""

BUILTIN = {"digits": "digits.npz"}   # `data.name` of `source: builtin` -> its file in this folder
