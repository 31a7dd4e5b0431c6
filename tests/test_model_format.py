"""docs/model-format.md is the contract other clients are written from: every exported file must match it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nextword import Tokenizer
from nextword.modelfile.reader import read_model_file

from conftest import SEED_LINES

DOC = Path(__file__).resolve().parent.parent / "docs" / "model-format.md"
TYPES = {"str": str, "int": int, "float": float, "bool": bool, "object": dict, "list": list}


def documented_keys() -> dict[str, tuple[tuple[type, ...], bool, bool]]:
    """key pattern -> (allowed types, nullable, optional), from the doc's config table."""
    keys = {}
    for key, kind in re.findall(r"^\| `([a-z_.*0-9]+)` \| ([a-z ,]+?) \|", DOC.read_text(encoding="utf-8"), re.M):
        names = re.findall(r"\b(str|int|float|bool|object|list)\b", kind)
        if names:
            keys[key] = (tuple(TYPES[n] for n in names), "null" in kind, "optional" in kind)
    return keys


def flatten(data: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        out[path] = value
        if isinstance(value, dict) and path != "training.final_metrics":
            out.update(flatten(value, path + "."))
    return out


def matches(pattern: str, key: str) -> bool:
    a, b = pattern.split("."), key.split(".")
    return len(a) == len(b) and all(x in ("*", y) for x, y in zip(a, b))


@pytest.mark.parametrize("name", ["model.tflite", "model.float16.tflite", "model.int8.tflite", "model.onnx",
                                  "model.int8.onnx"])
def test_every_exported_file_matches_the_documented_keys(exported, name):
    _, models, _ = exported
    keys = documented_keys()
    assert len(keys) > 40, "the doc's key table was not found"
    found = flatten(read_model_file(models / name).metadata.to_dict())
    for key, value in found.items():
        pattern = next((p for p in keys if matches(p, key)), None)
        assert pattern, f"{name}: key {key} is not in docs/model-format.md"
        kinds, nullable, _ = keys[pattern]
        if value is None:
            assert nullable, f"{name}: {key} is null but the doc does not allow it"
        else:
            ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
            assert ok, f"{name}: {key} is {type(value).__name__}, the doc says {kinds}"
    required = [p for p, (_, _, optional) in keys.items() if "*" not in p and not optional
                and not any(p.startswith(o + ".") for o, (_, _, opt) in keys.items() if opt)]
    for pattern in required:
        assert pattern in found, f"{name}: documented key {pattern} is missing"


def test_the_documented_tokenizer_examples_hold():
    text = DOC.read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]*)` \| [^|]+ \| ([\d ]+) \|$", text, re.M)
    assert len(rows) >= 4
    tokenizer = Tokenizer.fit(SEED_LINES)
    assert " ".join(tokenizer.vocab) == "<pad> hello how are you your is day friends what doing <unk>"
    for source, ids in rows:
        assert tokenizer.encode(source) == [int(i) for i in ids.split()], source
