"""Packaging promises: one namespace, and the runtime alone never needs TensorFlow."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import zipfile
from pathlib import Path

from packaging.requirements import Requirement

HEAVY = {"tensorflow", "tensorflow-cpu", "keras", "tf2onnx", "onnx", "matplotlib"}


def requirements() -> list[Requirement]:
    return [Requirement(r) for r in importlib.metadata.requires("nextword") or []]


def test_base_install_pulls_only_numpy():
    base = [r.name for r in requirements() if r.marker is None or "extra" not in str(r.marker)]
    assert base == ["numpy"]


def test_heavy_packages_only_come_with_extras():
    for req in requirements():
        if req.name in HEAVY:
            assert 'extra == "train"' in str(req.marker), req


def test_engine_extras():
    by_extra: dict[str, set[str]] = {}
    for req in requirements():
        if req.marker and "extra" in str(req.marker):
            extra = str(req.marker).split('extra == "')[1].split('"')[0]
            by_extra.setdefault(extra, set()).add(str(req).split(";")[0].replace(" ", ""))
    assert any(r.startswith("ai-edge-litert") for r in by_extra["litert"])
    assert {"tflite-runtime==2.14.0", "numpy<2"} <= by_extra["tflite"]
    assert any(r.startswith("onnxruntime") for r in by_extra["onnx"])


def test_importing_the_runtime_never_imports_tensorflow():
    code = ("import sys, nextword, nextword.cli, nextword.context, nextword.config, nextword.train, "
            "nextword.export; print(sorted(m for m in ('tensorflow', 'keras', 'tf2onnx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_wheel_has_one_namespace_and_the_embedded_corpus(tmp_path):
    root = Path(__file__).resolve().parent.parent
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(root)],
                   check=True, capture_output=True)
    [wheel] = tmp_path.glob("nextword-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert top_level == {"nextword"}
    for expected in ("nextword/tokenizer.py", "nextword/train/trainer.py", "nextword/export/__init__.py",
                     "nextword/train/data/default_corpus.txt"):
        assert expected in names
