"""A custom keras.Model subclass, as in the reference material's MyNetwork (written for Keras 3)."""

import keras


class MyNetwork(keras.Model):
    """Two hidden layers and a linear output, composed in call()."""

    def __init__(self, hidden: int = 64, classes: int = 10, dropout: float = 0.1, **kwargs):
        super().__init__(**kwargs)
        self.hidden, self.classes, self.dropout = hidden, classes, dropout
        self.fc1 = keras.layers.Dense(hidden, activation="relu")
        self.drop = keras.layers.Dropout(dropout)
        self.fc2 = keras.layers.Dense(hidden, activation="relu")
        self.out = keras.layers.Dense(classes)

    def call(self, inputs, training=False):
        x = self.fc1(inputs)
        x = self.drop(x, training=training)
        return self.out(self.fc2(x))

    def get_config(self):
        return {**super().get_config(), "hidden": self.hidden, "classes": self.classes, "dropout": self.dropout}
