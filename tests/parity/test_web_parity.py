"""The parity matrix's web column: every fixture's ONNX files in ONNX Runtime Web (wasm), in headless Chromium.

Run by `tests/parity/run.sh` in the training environment (it has Playwright and ONNX Runtime):

    NEXTWORD_PARITY_DIR=build/parity NEXTWORD_PARITY_OUT=build/parity/rows-web.jsonl pytest tests/parity/test_web_parity.py

Each cell measures the window, step and sequence forms, run by the page's own ONNX Runtime Web session,
against the Keras references with the same tolerances as every other engine, and the page's suggestions
against `nextword predict`'s (ONNX Runtime) for the fixture's texts.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: the browser helpers

from browser import WebEngine, browser_session, missing, open_page, page_suggest, served  # noqa: E402
from nextword import Predictor  # noqa: E402
from nextword.modelfile.contract import PRECISIONS  # noqa: E402
from nextword.engines import installed_engines  # noqa: E402
from nextword.export.validate import sequence_probs  # noqa: E402
from test_parity import MANIFEST, ROOT, model_path, record_forms, step_through  # noqa: E402
from test_web import assert_same_suggestions  # noqa: E402

ENGINE = "onnxruntime-web"
pytestmark = [pytest.mark.skipif(MANIFEST is None, reason=f"no parity fixtures in {ROOT} (build_fixtures.py)"),
              pytest.mark.skipif(missing() is not None, reason=str(missing())),
              pytest.mark.skipif("onnxruntime" not in installed_engines("onnx"),
                                 reason="the page is compared with ONNX Runtime, not installed here")]


@pytest.fixture(scope="module")
def browser():
    with browser_session() as session:
        yield session


def cells():
    return [] if MANIFEST is None else [(model, p) for model in MANIFEST["models"] for p in PRECISIONS["onnx"]]


@pytest.mark.parametrize("model, precision", cells(), ids=lambda v: str(v))
def test_web_cell(browser, model, precision):
    path = model_path(model, "onnx", precision)
    reference = np.load(ROOT / model / "reference.npz")
    contexts, keras_probs = reference["contexts"], reference["probs"]
    predictor = Predictor.load(path, engine="onnxruntime")
    config = predictor.config
    texts = json.loads((ROOT / model / "texts.json").read_text())
    with served({path.name: path}) as server:
        page = open_page(browser, server, path.name)
        engine = WebEngine(page)
        window = engine.window(contexts)
        step = step_through(engine, contexts, config.num_layers, config.hidden_size)
        sequence = sequence_probs(engine, contexts, config)
        expected = [[(s.word, s.prob) for s in predictor.suggest(text, 3)] for text in texts]
        got = page_suggest(page, texts)
        try:
            assert_same_suggestions(expected, got, texts, precision)
            suggest_matches = True
        except AssertionError:
            suggest_matches = False
        assert page.errors == []
    version = json.loads((Path(__file__).resolve().parents[2] / "clients/web/package-lock.json").read_text())
    ort_version = version["packages"]["node_modules/onnxruntime-web"]["version"]
    base = {"model": model, "format": "onnx", "precision": precision, "engine": ENGINE,
            "machine": platform.machine(), "python": "wasm", "numpy": ort_version}
    problems = record_forms(base, keras_probs, {"window": window, "step": step, "sequence": sequence},
                            suggest_matches)
    assert not problems, problems
    assert suggest_matches, "the page's suggestions differ from nextword predict's"
