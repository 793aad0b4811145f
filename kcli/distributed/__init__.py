"""Training on several processes or devices: the tf.distribute strategy (strategy), a TF_CONFIG cluster (cluster), local
worker processes under a supervisor (workers) and the Keras 3.15 multi-worker workaround (multiworker_fix).
"""
