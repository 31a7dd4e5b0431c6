"""nextword: next-word suggestions from an LSTM, trained with Keras, run on a device.

This base package is the on-device runtime: it needs numpy and one inference
engine, never TensorFlow. Training lives in ``nextword.train`` and export in
``nextword.export``; both import TensorFlow only when they run.

    >>> from nextword import Tokenizer
    >>> Tokenizer.fit(["hello how are you"]).encode("how are")
    [2, 3]
"""

__version__ = "0.1.0"

from nextword.context import Suggestion
from nextword.errors import NextwordError
from nextword.predictor import Predictor
from nextword.session import Session
from nextword.tokenizer import Tokenizer, TokenizerConfig

__all__ = ["NextwordError", "Predictor", "Session", "Suggestion", "Tokenizer", "TokenizerConfig", "__version__"]
