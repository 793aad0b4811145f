"""A custom layer, as in the reference material's MyDense (written for Keras 3)."""

import keras


class MyDense(keras.layers.Layer):
    """A dense layer written by hand: x @ w + b."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        # Keras 3.14+: add_weight takes name/shape as keywords.
        self.w = self.add_weight(name="w", shape=(input_shape[-1], self.units), initializer="glorot_uniform")
        self.b = self.add_weight(name="b", shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        return inputs @ self.w + self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}
