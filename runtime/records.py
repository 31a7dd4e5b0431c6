"""Typed records that are saved as JSON: one rule from a dataclass to a dict and back.

    report = TrainReport.from_dict(json.loads(text))     # nested records built from their own dicts
    report.training.epochs_completed                     # read by attribute everywhere
    json.dumps(report.to_dict())                         # the same JSON the record was read from

A record is a dataclass that inherits ``Record``. ``from_dict`` takes the fields it knows (a newer file's
extra keys are ignored, an older file's missing ones take the field's default) and builds nested records
(and any field whose type has ``from_dict``/``to_dict``, such as ``ModelConfig``) from their dicts; ``to_dict`` leaves out the fields listed in ``OMIT_IF_NONE`` while they are None, so an
optional part (a distributed run's workers) appears only where it exists, as it always did.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, ClassVar, TypeVar

R = TypeVar("R", bound="Record")


class RecordError(ValueError):
    """A dict that cannot be read as the record: what was wrong, in one phrase."""


class Record:
    #: Optional fields written only when they hold something.
    OMIT_IF_NONE: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict:
        out = {}
        for field in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, field.name)
            if value is None and field.name in self.OMIT_IF_NONE:
                continue
            out[field.name] = _plain(value)
        return out

    @classmethod
    def from_dict(cls: type[R], data: Any) -> R:
        if not isinstance(data, dict):
            raise RecordError(f"{cls.__name__} must be a JSON object, not {type(data).__name__}")
        hints = typing.get_type_hints(cls)
        values = {}
        for field in dataclasses.fields(cls):  # type: ignore[arg-type]
            if field.name not in data:
                if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                    raise RecordError(f"{cls.__name__} has no {field.name!r}")
                continue
            values[field.name] = _read(hints[field.name], data[field.name])
        try:
            return cls(**values)
        except TypeError as err:
            raise RecordError(f"{cls.__name__}: {err}") from None


def _read(hint, value):
    """``value`` as the field's type: a record (``X``, ``X | None``) or a list of records (``list[X]``) built
    from its dicts; anything else as JSON gave it."""
    if value is None:
        return None
    if typing.get_origin(hint) is list:
        (item,) = typing.get_args(hint) or (None,)
        if not isinstance(value, list):
            raise RecordError(f"expected a list, not {type(value).__name__}")
        return [_read(item, v) for v in value]
    options = typing.get_args(hint) if typing.get_origin(hint) in (typing.Union, types.UnionType) else (hint,)
    record = next((o for o in options if isinstance(o, type) and hasattr(o, "from_dict")), None)
    return record.from_dict(value) if record is not None else value


def _plain(value):
    """JSON's shapes: tuples as lists, records (and other typed values with ``to_dict``) as dicts."""
    if hasattr(value, "to_dict"):
        return value.to_dict()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


HeaderMismatch = typing.Literal["format", "older", "newer"]


def header_mismatch(data: Any, *, format: str, version: int, key: str = "format_version") -> HeaderMismatch | None:
    """How a versioned file's header differs from what this nextword reads, or None when it does not:
    "format" (not a dict, or another ``format``), "older" (an earlier whole-number version: the caller says how
    to make it again) or "newer" (any other version, a bool included: upgrade nextword). Every nextword file
    (model metadata, tokenizer settings, a run's config.json, a profile) is checked by this one rule and says
    what it means in its own words."""
    if not isinstance(data, dict) or data.get("format") != format:
        return "format"
    found = data.get(key)
    if found == version and not isinstance(found, bool):
        return None
    if isinstance(found, int) and not isinstance(found, bool) and 0 < found < version:
        return "older"
    return "newer"
