"""The rules written once: typed records to and from JSON, versioned headers, file errors, what a path is."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from nextword.config import ModelConfig
from nextword.errors import ModelFileError
from nextword.fileio import read_file
from nextword.records import Record, RecordError, header_mismatch
from nextword.runs import path_kind


@dataclass(frozen=True)
class Inner(Record):
    a: int
    b: str = "x"


@dataclass
class Outer(Record):
    OMIT_IF_NONE = ("extra",)

    inner: Inner
    items: list[Inner] = field(default_factory=list)
    maybe: Inner | None = None
    model: ModelConfig | None = None
    extra: dict | None = None
    pair: tuple = ()


def test_a_record_round_trips_through_json_with_nested_records():
    record = Outer(Inner(1), [Inner(2, "y"), Inner(3)], Inner(4), ModelConfig(vocab_size=12, window=5), pair=(1, 2))
    data = json.loads(json.dumps(record.to_dict()))
    assert "extra" not in data and data["pair"] == [1, 2] and data["items"][0] == {"a": 2, "b": "y"}
    again = Outer.from_dict(data)
    assert again.items == [Inner(2, "y"), Inner(3)] and again.maybe == Inner(4) and again.model == record.model
    assert again.to_dict() == data
    assert Outer.from_dict({**data, "extra": {"k": 1}}).to_dict()["extra"] == {"k": 1}


def test_an_older_or_newer_file_reads_and_a_broken_one_is_refused():
    assert Outer.from_dict({"inner": {"a": 1, "newer_key": 5}}) == Outer(Inner(1))  # extra keys ignored
    with pytest.raises(RecordError, match="has no 'a'"):
        Outer.from_dict({"inner": {"b": "y"}})
    with pytest.raises(RecordError, match="JSON object"):
        Outer.from_dict({"inner": [1]})
    with pytest.raises(RecordError, match="list"):
        Outer.from_dict({"inner": {"a": 1}, "items": {"a": 2}})


@pytest.mark.parametrize("data, expected", [
    ({"format": "f", "format_version": 2}, None),
    ({"format": "f", "format_version": 1}, "older"),
    ({"format": "f", "format_version": 3}, "newer"),
    ({"format": "f", "format_version": True}, "newer"),  # a bool is not a version
    ({"format": "f", "format_version": "2"}, "newer"),
    ({"format": "f"}, "newer"),
    ({"format": "g", "format_version": 2}, "format"),
    ([], "format"),
])
def test_one_rule_for_versioned_headers(data, expected):
    assert header_mismatch(data, format="f", version=2) == expected


def test_read_file_says_what_is_wrong_in_one_line(tmp_path):
    (tmp_path / "latin1.txt").write_bytes(b"caf\xe9\n")
    said = {}
    for name in ("nope", ".", "latin1.txt"):
        with pytest.raises(ModelFileError) as info:
            read_file(tmp_path / name, ModelFileError, what="model file", fix="check it", text=True)
        said[name] = str(info.value)
    assert said["nope"].endswith("does not exist; check it")
    assert "is a directory; check it" in said["."]
    assert "is not UTF-8 text (byte 3); check it" in said["latin1.txt"]
    assert all("\n" not in line for line in said.values())
    assert read_file(tmp_path / "latin1.txt", ModelFileError, what="model file", fix="") == b"caf\xe9\n"


def test_what_a_path_is(tmp_path):
    run, folder = tmp_path / "run", tmp_path / "models"
    run.mkdir(), folder.mkdir()
    (run / "config.json").write_text("{}")
    (tmp_path / "m.tflite").write_bytes(b"x")
    assert [path_kind(p) for p in (run, folder, tmp_path / "m.tflite", tmp_path / "a.KERAS", tmp_path / "gone")] \
        == ["run", "folder", "file", "keras", "missing"]
