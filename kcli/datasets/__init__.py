"""Datasets shipped with kcli (see README: Data and licenses)."""
