"""kcli: train TensorFlow/Keras models from YAML files.

Importing this package must stay cheap: TensorFlow is imported only by the stages that need it.
"""

__version__ = "0.1.0"
