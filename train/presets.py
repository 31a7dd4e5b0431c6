"""Named recipes: settings a corpus kind needs, applied under any flag the user gives.

    nextword train --preset ptb --corpus ../shared/data/ptb/ptb.train.txt --out runs/ptb \\
        --valid ../shared/data/ptb/ptb.valid.txt
"""

from __future__ import annotations

from nextword.errors import UsageError

PRESETS: dict[str, dict] = {
    # Penn Treebank-like corpora: already tokenized, one sentence per line, 10k words with <unk>.
    # Trained for the contexts a keyboard serves: half the sentences from the zero state after <eos>, half
    # after the sentences before them (stream context, in the window that would otherwise be padding).
    # Tied embeddings with a 128 projection: the 10k softmax is most of the compute and of the file.
    "ptb": {
        "mode": "sentence",
        "sentence_history": 0.5,
        "window": 30,
        "keep_punctuation": True,
        "eos": True,
        "embedding_dim": 128,
        "hidden_size": 256,
        "projection_dim": 128,
        "tie_embeddings": True,
        "num_layers": 1,
        "dropout": 0.3,
        "batch_size": 64,
        "learning_rate": 2e-3,
        "lr_decay": 0.7,
        "lr_decay_start": 3,
        "clipnorm": 5.0,
        "epochs": 9,
    },
}


def preset(name: str) -> dict:
    if name not in PRESETS:
        raise UsageError(f"preset {name!r} does not exist; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
