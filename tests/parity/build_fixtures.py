"""Environment 1 of the parity suite (needs the `train` extra): train, export, write Keras references.

    python tests/parity/build_fixtures.py build/parity

Three small fixture models, each exported to every format and precision:
- ``tiny``:  a vocabulary of ~30 words, one layer, prefix mode (the seed's recipe);
- ``wide``:  a vocabulary of ~3,000 words (a generated corpus), one layer, stream mode;
- ``deep``:  two layers, stream mode with <eos>;
- ``keras-lstm``, ``keras-gru``: a Keras user's own models (the tutorial's flow, ``keras_tutorial.py``),
  an unmasked LSTM and a masked GRU, exported from their .keras file with ``Tokenizer.to_json()``.
For each: ``reference.npz`` holds the validation contexts (held-out text plus the edge cases of the
export) and the Keras model's probabilities for them; ``texts.json`` holds sample texts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from nextword.export import exporter  # noqa: E402
from nextword.modelfile.contract import PRECISIONS  # noqa: E402
from nextword.tokenizer import TokenizerConfig  # noqa: E402
from nextword.train import trainer  # noqa: E402
from nextword.train.plan import TrainConfig, plan_new  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from keras_tutorial import train_tutorial_model  # noqa: E402

#: Keras users' models: the tutorial's unmasked LSTM (the cell reads the padding) and a masked GRU.
KERAS_MODELS = ("lstm", "gru")

SAMPLE_TEXTS = ["", "we want", "i like the", "good", "they see some tea today ", "you need a wa",
                "zebra quantum", "Ça va 東京 🙂", "the " * 40]


def tiny_corpus() -> str:
    subjects, verbs = ["i", "you", "we", "they"], ["like", "want", "need", "see"]
    objects = ["coffee", "the train", "a walk", "some tea", "the news"]
    lines = [f"{s} {v} {o} today" for s in subjects for v in verbs for o in objects]
    return "\n".join(lines + ["good morning", "good night", "see you soon", "thank you so much"]) + "\n"


def wide_corpus(words: int = 3000, lines: int = 2500, seed: int = 0) -> str:
    """Generated sentences over a vocabulary of ``words`` made-up words with a Zipf-like frequency."""
    rng = np.random.default_rng(seed)
    syllables = ["ka", "lo", "mi", "nu", "pe", "ra", "si", "to", "vu", "ze", "ba", "do", "fi", "gu", "he"]
    vocab = sorted({"".join(rng.choice(syllables, rng.integers(2, 4))) for _ in range(words * 3)})[:words]
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    out = []
    for _ in range(lines):
        length = int(rng.integers(4, 14))
        first = rng.choice(len(vocab), p=weights)
        sentence = [vocab[first]] + [vocab[(first * 7 + i * 13 + int(rng.integers(0, 3))) % len(vocab)]
                                     for i in range(length - 1)]
        out.append(" ".join(sentence))
    return "\n".join(out) + "\n"


MODELS = {
    "tiny": dict(corpus=tiny_corpus, mode="prefix", epochs=30, eos=False, options=dict(embedding_dim=8, hidden_size=16)),
    "wide": dict(corpus=wide_corpus, mode="stream", epochs=2, eos=True, options=dict(embedding_dim=16, hidden_size=32, window=12)),
    "deep": dict(corpus=tiny_corpus, mode="stream", epochs=6, eos=True,
                 options=dict(embedding_dim=8, hidden_size=16, num_layers=2, window=8, projection_dim=8,
                              tie_embeddings=True)),
}


def build(root: Path) -> dict:
    manifest = {"models": {}, "precisions": {k: list(v) for k, v in PRECISIONS.items()}}
    for name, spec in MODELS.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        corpus = folder / "corpus.txt"
        corpus.write_text(spec["corpus"](), encoding="utf-8")
        plan = plan_new(folder / "run", TrainConfig(mode=spec["mode"], epochs=spec["epochs"], corpus=(str(corpus),),
                                                    batch_size=32),
                        TokenizerConfig(eos_token="<eos>" if spec["eos"] else None), spec["options"], overwrite=True)
        result = trainer.start(plan, log=lambda _: None)
        exported = exporter.export_run(folder / "run", folder / "models", formats=list(PRECISIONS),
                                       precisions=None, overwrite=True, log=print)
        report, contexts = exported.report, exported.validation.contexts
        # The very contexts the export was validated on, and Keras' probabilities for them.
        np.savez(folder / "reference.npz", contexts=contexts, probs=exported.validation.reference)
        (folder / "texts.json").write_text(json.dumps(SAMPLE_TEXTS, ensure_ascii=False))
        manifest["models"][name] = {
            "vocab_size": result.tokenizer.vocab_size,
            "layers": result.config.num_layers,
            "files": {f"{e['format']}/{e['precision']}": e["path"] for e in report["files"]},
            "contexts": int(len(contexts)),
        }
    for kind in KERAS_MODELS:  # a Keras user's own model, made by the tutorial's flow (keras_tutorial.py)
        name = f"keras-{kind}"
        folder = root / name
        made = train_tutorial_model(folder / "keras", kind)
        exported = exporter.export_run(made.keras_path, folder / "models", formats=list(PRECISIONS),
                                       precisions=None, overwrite=True, tokenizer=made.tokenizer_json, log=print)
        np.savez(folder / "reference.npz", contexts=exported.validation.contexts, probs=exported.validation.reference)
        (folder / "texts.json").write_text(json.dumps(SAMPLE_TEXTS, ensure_ascii=False))
        manifest["models"][name] = {
            "vocab_size": len(made.tokenizer.word_index) + 1,
            "layers": 1,
            "files": {f"{e['format']}/{e['precision']}": e["path"] for e in exported.report["files"]},
            "contexts": int(len(exported.validation.contexts)),
        }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "build/parity")
    summary = build(target)
    print(json.dumps({name: {k: v for k, v in m.items() if k != "files"} for name, m in summary["models"].items()}))
