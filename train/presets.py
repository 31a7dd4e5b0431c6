"""Named recipes: settings a corpus kind needs, applied under any flag the user gives.

    nextword train --preset ptb --corpus ../shared/data/ptb/ptb.train.txt --out runs/ptb \\
        --valid ../shared/data/ptb/ptb.valid.txt
    nextword train --preset small --corpus my_messages.txt --out runs/mine
    nextword train --preset big --corpus books/ --out runs/books

Every figure behind these choices is in docs/benchmarks.md. A preset's sampled softmax is switched off
(with a note) when the vocabulary is small enough for the full one (``SAMPLED_SOFTMAX_MIN_VOCAB_RATIO``).
"""

from __future__ import annotations

from nextword.errors import UsageError

#: A preset's sampled softmax only applies when the vocabulary has this many times its sampled classes.
SAMPLED_SOFTMAX_MIN_VOCAB_RATIO = 4

#: A preset trained on a smaller corpus than it was tuned on runs more epochs, so that it takes at least this
#: many training steps (the ptb preset takes 11,004 on PTB: 786 batches x 14 epochs). Its decay is stretched to
#: the same total, and early stopping keeps the best epoch. Only when the epochs come from the preset.
MIN_STEPS: dict[str, int] = {"ptb": 11000}
#: The most epochs that scaling gives (a corpus of a few hundred lines would otherwise ask for thousands).
MAX_SCALED_EPOCHS = 60
SCALED_EARLY_STOPPING = 3

PRESETS: dict[str, dict] = {
    # Penn Treebank-like corpora: already tokenized, one sentence per line, 10k words with <unk>.
    # Trained for the contexts a keyboard serves: half the sentences from the zero state after <eos>, half
    # after the sentences before them (stream context, in the window that would otherwise be padding).
    # Tied embeddings with a 128 projection: the 10k softmax is most of the compute and of the file.
    # Training steps score 1,024 sampled classes instead of 10k (3-4x the targets/s on 2 cores); validation,
    # eval and export use the full softmax. 14 epochs, the rate decayed by 0.7 from the 6th: 18 minutes on a
    # 2-core AVX-512 Xeon, test perplexity 107 (6 epochs: 8.6 minutes, 115; docs/benchmarks.md).
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
        "dropout": 0.25,
        "batch_size": 64,
        "learning_rate": 3e-3,
        "lr_decay": 0.7,
        "lr_decay_start": 5,
        "clipnorm": 5.0,
        "sampled_softmax": 1024,
        "epochs": 14,
    },
    # A few thousand lines of a person's own text (messages, notes): raw text, punctuation stripped as the
    # keyboard strips it. A small tied model with strong dropout (the corpus is too small for more), words
    # seen once become <unk> (no model learns a word from one use), and training stops when validation
    # stops improving (the best epoch's weights are kept).
    "small": {
        "mode": "sentence",
        "sentence_history": 0.5,
        "window": 20,
        "eos": True,
        "min_count": 2,
        "embedding_dim": 64,
        "hidden_size": 128,
        "projection_dim": 64,
        "tie_embeddings": True,
        "num_layers": 1,
        "dropout": 0.5,
        "batch_size": 32,
        "learning_rate": 3e-3,
        "clipnorm": 5.0,
        "early_stopping": 3,
        "epochs": 40,
    },
    # Millions of lines: a wider model, a vocabulary capped at 30k words, the sampled softmax (the full one
    # over 30k words would be nearly all of a step), larger batches and few epochs, light dropout (a big
    # corpus regularises itself).
    "big": {
        "mode": "sentence",
        "sentence_history": 0.5,
        "window": 30,
        "eos": True,
        "max_vocab": 30000,
        "embedding_dim": 192,
        "hidden_size": 512,
        "projection_dim": 192,
        "tie_embeddings": True,
        "num_layers": 1,
        "dropout": 0.1,
        "batch_size": 128,
        "learning_rate": 3e-3,
        "lr_decay": 0.5,
        "lr_decay_start": 2,
        "clipnorm": 5.0,
        "sampled_softmax": 2048,
        "epochs": 4,
    },
}


def preset(name: str) -> dict:
    if name not in PRESETS:
        raise UsageError(f"preset {name!r} does not exist; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]
