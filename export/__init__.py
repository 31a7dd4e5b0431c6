"""Export stage: a training run -> TFLite and ONNX files with the vocabulary and config inside, each validated.

Needs the ``train`` extra (TensorFlow, tf2onnx). ``nextword.export.exporter.export_run`` does the work;
``nextword export RUN_DIR --out DIR`` calls it.
"""
