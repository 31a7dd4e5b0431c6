"""The model's shape, in one frozen dataclass saved with every artifact.

Training writes it into ``config.json`` of a run; export copies it into each
model file, so the device never has to be told the window or vocabulary size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from nextword.errors import UsageError

#: Bump when a run's saved ``config.json`` changes incompatibly (a model file's embedded config has its own
#: version, ``nextword.modelfile.contract.MODEL_FORMAT_VERSION``).
CONFIG_FORMAT_VERSION = 1


#: Bounds of the integer settings: far above any model a device runs, low enough that a typo
#: (or a damaged file) cannot ask for terabytes.
INT_RANGES = {
    "vocab_size": (2, 10_000_000),
    "window": (1, 4096),
    "embedding_dim": (1, 65_536),
    "hidden_size": (1, 65_536),
    "num_layers": (1, 64),
    "projection_dim": (0, 65_536),
}


@dataclass(frozen=True)
class ModelConfig:
    """``Embedding -> LSTM(tanh) x num_layers [-> projection] -> Dense softmax``; defaults are the seed tutorial's.

    Padding (id 0) is masked: a pre-padded context gives exactly the
    probabilities of the same words fed one at a time from the zero state.
    """

    vocab_size: int
    #: Number of context ids the model reads; shorter contexts are pre-padded with 0.
    window: int
    embedding_dim: int = 10
    hidden_size: int = 50
    num_layers: int = 1
    #: Dropout before each LSTM layer and before the softmax, training only.
    dropout: float = 0.0
    #: A linear layer from the top LSTM down to this size before the softmax (0: none). With a 10k vocabulary
    #: the softmax is most of the compute and of the file; projecting 256 -> 128 halves both.
    projection_dim: int = 0
    #: The softmax reuses the embedding matrix (transposed) plus its own bias: the output needs
    #: ``projection_dim`` (or ``hidden_size`` without one) equal to ``embedding_dim``.
    tie_embeddings: bool = False
    #: True (every model nextword trains): padding (id 0) is masked, the state skips it. False: a Keras
    #: model without ``mask_zero`` brought to ``nextword export``, whose cells read the pre-padding zeros
    #: like any token; its files are read through the full pre-padded window from the zero state only.
    masked: bool = True

    @property
    def output_dim(self) -> int:
        """Width of the features the softmax reads."""
        return self.projection_dim or self.hidden_size

    def __post_init__(self) -> None:
        for name, (low, high) in INT_RANGES.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise UsageError(f"model setting {name}={value!r} must be an integer")
            if not low <= value <= high:
                raise UsageError(f"model setting {name}={value!r} is out of range ({low} to {high:,})")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0.0 <= self.dropout < 1.0:
            raise UsageError(f"model setting dropout={self.dropout!r} is out of range (0 to < 1)")
        if not isinstance(self.masked, bool):
            raise UsageError(f"model setting masked={self.masked!r} must be true or false")
        if not isinstance(self.tie_embeddings, bool):
            raise UsageError(f"model setting tie_embeddings={self.tie_embeddings!r} must be true or false")
        if self.tie_embeddings and self.output_dim != self.embedding_dim:
            raise UsageError(
                f"tied embeddings need the softmax input ({self.output_dim}) to be the embedding size "
                f"({self.embedding_dim}); set --projection-dim {self.embedding_dim}"
            )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        if not isinstance(data, dict):
            raise UsageError("model config must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"model config holds unknown keys {unknown}; was it written by a newer nextword?")
        missing = sorted({"vocab_size", "window"} - set(data))
        if missing:
            raise UsageError(f"model config lacks {', '.join(missing)}")
        return cls(**data)
