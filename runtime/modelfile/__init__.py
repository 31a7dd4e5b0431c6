"""The model file: what a nextword .tflite/.onnx file holds and how it is read, checked and signed.

    contract      names, forms, precisions and the typed metadata (``ModelMetadata``) every file carries
    containers    the TFLite zip and the ONNX metadata_props, byte for byte (no onnx package needed)
    reader        ``read_model_file``: format, metadata, checksum and signature, before any engine sees it
    tflite_check  the flatbuffer's structure, so a damaged file never reaches tflite-runtime
    signing       Ed25519 keys, signatures, ``sign_file``

    from nextword.modelfile import read_model_file
    read_model_file("model.int8.tflite").config.window
"""

from nextword.modelfile.reader import ModelFile, read_model_file

__all__ = ["ModelFile", "read_model_file"]
