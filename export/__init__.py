"""Export stage: a training run -> TFLite and ONNX files with the vocabulary inside (next issue)."""
