"""Training stage: corpus -> tokenizer -> Keras LSTM -> run directory.

Needs the ``train`` extra (TensorFlow). Importing this package does not import
TensorFlow; ``nextword.train.trainer`` does.
"""
