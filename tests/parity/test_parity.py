"""Parity of every exported file, on every engine this environment has, with the Keras references.

Run by `tests/parity/run.sh` in runtime-only environments (no TensorFlow):

    NEXTWORD_PARITY_DIR=build/parity NEXTWORD_PARITY_OUT=build/parity/rows-litert.jsonl pytest tests/parity

Each (model, format, precision, engine) cell measures the window, step and sequence forms against Keras
(the sequence form on each context's own words, as suggest() runs it), the window against the step form,
and suggest() against the raw engine output. Every cell appends one row per form to the JSONL file that
`matrix.py` prints (and checks for missing cells).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nextword import Predictor
from nextword.context import window_ids
from nextword.modelfile.contract import ENGINES, PRECISIONS
from nextword.engines import installed_engines, open_engine
from nextword.export.validate import TOLERANCES, compare, failures, sequence_probs  # numpy only: no TensorFlow
from nextword.modelfile.reader import read_model_file

ROOT = Path(os.environ.get("NEXTWORD_PARITY_DIR", "build/parity"))
OUT = os.environ.get("NEXTWORD_PARITY_OUT")
MANIFEST = json.loads((ROOT / "manifest.json").read_text()) if (ROOT / "manifest.json").exists() else None
if MANIFEST is not None and os.environ.get("NEXTWORD_PARITY_MODELS"):  # a column that measures some fixtures
    chosen = os.environ["NEXTWORD_PARITY_MODELS"].split(",")
    MANIFEST["models"] = {m: v for m, v in MANIFEST["models"].items() if m in chosen}
pytestmark = pytest.mark.skipif(MANIFEST is None, reason=f"no parity fixtures in {ROOT} (build_fixtures.py)")


def cells():
    if MANIFEST is None:
        return []
    return [(model, fmt, precision, engine) for model in MANIFEST["models"] for fmt, precisions in PRECISIONS.items()
            for precision in precisions for engine in installed_engines(fmt)]


def reference_contexts(model: str) -> tuple[np.ndarray, np.ndarray]:
    """The fixture's validation contexts and Keras' probabilities for them. ``NEXTWORD_PARITY_CONTEXTS=N``
    (the emulated arm64 column, where each context costs ~10x): N of them, evenly spread over the text's
    contexts, plus every edge case (the last ones)."""
    reference = np.load(ROOT / model / "reference.npz")
    contexts, probs = reference["contexts"], reference["probs"]
    most = int(os.environ.get("NEXTWORD_PARITY_CONTEXTS", "0"))
    if most and len(contexts) > most + EDGE_CASES:
        text = np.unique(np.linspace(0, len(contexts) - EDGE_CASES - 1, most).round().astype(int))
        rows = np.concatenate([text, np.arange(len(contexts) - EDGE_CASES, len(contexts))])
        contexts, probs = contexts[rows], probs[rows]
    return contexts, probs


#: The export's edge cases (empty, one word, full window, longer, unknown words, only unknown words) come
#: last in every reference; a subset keeps all of them.
EDGE_CASES = 6


def record(row: dict) -> None:
    if OUT:
        with open(OUT, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")


def model_path(model: str, fmt: str, precision: str) -> Path:
    return ROOT / model / "models" / MANIFEST["models"][model]["files"][f"{fmt}/{precision}"]


def step_through(engine, contexts: np.ndarray, layers: int, hidden: int) -> np.ndarray:
    h = np.zeros((layers, len(contexts), hidden), np.float32)
    c = np.zeros_like(h)
    probs = None
    for column in contexts.T:
        probs, h, c = engine.step(column, h, c)
    return probs


@pytest.mark.parametrize("model, fmt, precision, engine", cells(), ids=lambda v: str(v))
def test_cell(model, fmt, precision, engine):
    base = {"model": model, "format": fmt, "precision": precision, "engine": engine,
            "machine": platform.machine(), "python": f"{sys.version_info.major}.{sys.version_info.minor}",
            "numpy": np.__version__}
    path = model_path(model, fmt, precision)
    checked = read_model_file(path)
    engine_object = open_engine(checked, engine)
    contexts, keras_probs = reference_contexts(model)
    config = checked.config
    window = engine_object.window(contexts)
    step = step_through(engine_object, contexts, config.num_layers, config.hidden_size)
    sequence = sequence_probs(engine_object, contexts, config)

    predictor = Predictor(checked.tokenizer, checked.config, engine_object, checked)
    texts = json.loads((ROOT / model / "texts.json").read_text())
    suggest_matches = True
    for text in texts:
        context, prefix = predictor.completion_target(text)
        ids = predictor.context_ids(context)
        zero = np.zeros((config.num_layers, 1, config.hidden_size), np.float32)
        if config.masked:  # the context's own words from the zero state
            raw = engine_object.sequence(window_ids(ids, max(1, len(ids)))[None], zero, zero)[0][0]
        else:  # a model that reads its padding: the whole pre-padded window
            raw = engine_object.window(window_ids(ids, config.window)[None])[0]
        expected = predictor.rank(raw, 3, prefix)
        suggest_matches &= predictor.suggest(text, 3) == expected
    problems = record_forms(base, keras_probs, {"window": window, "step": step, "sequence": sequence},
                            suggest_matches)
    assert not problems, problems
    assert suggest_matches


def record_forms(base: dict, keras_probs: np.ndarray, forms: dict, suggest_matches: bool) -> list[str]:
    """One matrix row per form (measured against Keras), and every measure outside the precision's tolerance."""
    tolerance = TOLERANCES[base["precision"]]
    window_vs_step = compare(forms["window"], forms["step"])
    problems = []
    for form, output in forms.items():
        measures = compare(keras_probs, output)
        misses = failures(measures, tolerance)
        problems += [f"{form}: {m}" for m in misses]
        record({**base, "form": form, **measures, "window_vs_step_max_diff": window_vs_step["max_abs_diff"],
                "suggest_equals_raw": suggest_matches, "status": "ok" if not misses else "FAIL"})
    return problems + [f"window vs step: {m}" for m in failures(window_vs_step, tolerance)]


def test_every_format_precision_and_engine_has_a_cell():
    """Adding a format, precision or engine without fixtures and a parity cell fails here."""
    assert set(MANIFEST["precisions"]) == set(PRECISIONS) == set(ENGINES)
    for fmt, precisions in PRECISIONS.items():
        assert list(MANIFEST["precisions"][fmt]) == list(precisions)
        for model in MANIFEST["models"].values():
            for precision in precisions:
                assert f"{fmt}/{precision}" in model["files"], (fmt, precision)
    # Engines differ per environment; matrix.py checks that all of them together cover every cell.
    assert any(installed_engines(fmt) for fmt in PRECISIONS), "this environment has no engine at all"


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_text)
def test_tokenization_in_the_model_file_equals_the_training_run(text):
    """The tokenizer rebuilt from a model's metadata encodes like the run's own files."""
    from nextword.tokenizer import Tokenizer

    for model in MANIFEST["models"]:
        if not (ROOT / model / "run").is_dir():
            continue  # a Keras user's model: its tokenizer is checked against Keras in tests/test_keras_import.py
        trained = Tokenizer.load(ROOT / model / "run")
        for fmt in PRECISIONS:
            embedded = read_model_file(model_path(model, fmt, "float32")).tokenizer
            assert embedded.encode_line(text) == trained.encode_line(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_text)
def test_float32_suggestions_agree_across_engines(text):
    """Same words from every engine and format that is installed, up to float32 rounding of near-ties."""
    for model in MANIFEST["models"]:
        results = []
        for fmt in PRECISIONS:
            for engine in installed_engines(fmt):
                predictor = _predictors(model, fmt, engine)
                results.append(predictor.suggest(text, 3))
        first = results[0]
        for other in results[1:]:
            assert len(other) == len(first)
            for a, b in zip(first, other):
                assert a.word == b.word or abs(a.prob - b.prob) < 1e-5, (model, text, first, other)


_cache: dict = {}


def _predictors(model: str, fmt: str, engine: str) -> Predictor:
    key = (model, fmt, engine)
    if key not in _cache:
        _cache[key] = Predictor.load(model_path(model, fmt, "float32"), engine=engine)
    return _cache[key]
