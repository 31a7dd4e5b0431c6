"""The model's shape, in one frozen dataclass saved with every artifact.

Training writes it into ``config.json`` of a run; export copies it into each
model file, so the device never has to be told the window or vocabulary size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from nextword.errors import UsageError

#: Bump when a saved ``config.json`` or embedded config changes incompatibly.
CONFIG_FORMAT_VERSION = 1


@dataclass(frozen=True)
class ModelConfig:
    """``Embedding -> LSTM(tanh) x num_layers -> Dense softmax``; defaults are the seed tutorial's.

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

    def __post_init__(self) -> None:
        checks = {
            "vocab_size": self.vocab_size >= 2,
            "window": self.window >= 1,
            "embedding_dim": self.embedding_dim >= 1,
            "hidden_size": self.hidden_size >= 1,
            "num_layers": self.num_layers >= 1,
            "dropout": 0.0 <= self.dropout < 1.0,
        }
        for name, ok in checks.items():
            if not ok:
                raise UsageError(f"model setting {name}={getattr(self, name)!r} is out of range")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UsageError(f"model config holds unknown keys {unknown}; was it written by a newer nextword?")
        return cls(**data)
