"""A finished run, used: evaluate (and the numbers it scores a model by, in numpy: scores), predict (arrays and
tables: predict_input; images: predict_images; the classifier head: head), export to every format (export) and the
serving signature (signature, serving_export).
"""
