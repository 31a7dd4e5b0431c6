"""Validation of an exported file against the Keras model: one comparison for every format.

Like Hugging Face optimum's ``validate_model_outputs``, but a tolerance miss is
always an error, never a warning.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from nextword.records import Record


@dataclass(frozen=True)
class Tolerance:
    max_abs_diff: float | None = None
    min_top1_agreement: float | None = None
    min_top5_identical: float | None = None  # share of contexts whose top-5 *sets* are equal
    min_top5_overlap: float | None = None  # mean |top5 ∩ top5'| / 5
    #: Largest |p' - p| / p over the reference's top-5 words that hold at least TOP_PROB_FLOOR:
    #: the error where a suggestion strip's ranking and shown probabilities are decided.
    max_top_relative_error: float | None = None


#: Probabilities below this are not where a strip's top suggestions are decided; their relative error is noise.
TOP_PROB_FLOOR = 0.01


#: Per precision, as promised in the README. float16 is judged where a user sees it: the same top words,
#: and the probabilities of the top words within 4% of their own value (docs/export.md says why 4%). An
#: absolute bound (the former 1e-3) is tripped by a very confident model whose 0.990 becomes 0.988 while
#: nothing it shows changes.
TOLERANCES = {
    "float32": Tolerance(max_abs_diff=1e-5, min_top5_identical=1.0),
    "float16": Tolerance(min_top1_agreement=0.99, min_top5_overlap=0.98, max_top_relative_error=0.04),
    "int8": Tolerance(min_top1_agreement=0.97, min_top5_overlap=0.90),
}


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict:
    """Agreement of two (contexts, vocab) probability matrices."""
    reference = np.asarray(reference, np.float64)
    candidate = np.asarray(candidate, np.float64)
    if reference.shape != candidate.shape:
        return {"shape": list(candidate.shape), "expected_shape": list(reference.shape)}
    top5_ref = np.argsort(-reference, axis=1, kind="stable")[:, :5]
    top5_new = np.argsort(-candidate, axis=1, kind="stable")[:, :5]
    overlap = np.array([len(set(a) & set(b)) for a, b in zip(top5_ref, top5_new)])
    rows = np.arange(reference.shape[0])[:, None]
    top_ref, top_new = reference[rows, top5_ref], candidate[rows, top5_ref]  # (n, 5): the reference's top words
    counted = top_ref >= TOP_PROB_FLOOR
    relative = np.where(counted, np.abs(top_new - top_ref) / np.maximum(top_ref, TOP_PROB_FLOOR), 0.0)
    return {
        "contexts": int(reference.shape[0]),
        "max_abs_diff": float(np.max(np.abs(reference - candidate))),
        "top1_agreement": float(np.mean(top5_ref[:, 0] == top5_new[:, 0])),
        "top5_identical": float(np.mean(overlap == 5)),
        "top5_overlap": float(np.mean(overlap) / 5),
        "top_relative_error": float(relative.max()) if relative.size else 0.0,
    }


def failures(measures: dict, tolerance: Tolerance) -> list[str]:
    """Every measure outside its tolerance, as 'measure value vs tolerance' phrases."""
    if "expected_shape" in measures:
        return [f"output shape {measures['shape']} != expected {measures['expected_shape']}"]
    checks = [
        ("max_abs_diff", tolerance.max_abs_diff, lambda v, t: v <= t, "<="),
        ("top1_agreement", tolerance.min_top1_agreement, lambda v, t: v >= t, ">="),
        ("top5_identical", tolerance.min_top5_identical, lambda v, t: v >= t, ">="),
        ("top5_overlap", tolerance.min_top5_overlap, lambda v, t: v >= t, ">="),
        ("top_relative_error", tolerance.max_top_relative_error, lambda v, t: v <= t, "<="),
    ]
    return [f"{name} {measures[name]:.6g} (must be {op} {limit:g})"
            for name, limit, ok, op in checks if limit is not None and not ok(measures[name], limit)]


def tolerance_dict(precision: str) -> dict:
    return {k: v for k, v in asdict(TOLERANCES[precision]).items() if v is not None}


def measure(engine, contexts: np.ndarray, reference: np.ndarray, config) -> dict:
    """Every form against the reference: the window form on the contexts, the step form fed them column by
    column from the zero state, the sequence form on each context's own words only (what ``suggest()``
    runs); plus whether two identical calls agree."""
    results = {"window": compare(reference, engine.window(contexts))}
    if engine.has_sequence:
        results["sequence"] = compare(reference, sequence_probs(engine, contexts, config))
    if engine.has_step:
        h = np.zeros((config.num_layers, len(contexts), config.hidden_size), np.float32)
        c = np.zeros_like(h)
        probs = None
        for column in contexts.T:  # padding columns are no-ops: the masked design under test
            probs, h, c = engine.step(column, h, c)
        results["step"] = compare(reference, probs)
    # Same input, same output: no state may leak from one invocation to the next.
    if not np.array_equal(engine.window(contexts[:8]), engine.window(contexts[:8])):
        results["repeatable"] = False
    return results


def sequence_probs(engine, contexts: np.ndarray, config) -> np.ndarray:
    """The sequence form on each pre-padded context without its padding, contexts of one length batched
    (a model that reads its padding: on the whole window, as the runtime runs it)."""
    if not config.masked:
        zero = np.zeros((config.num_layers, len(contexts), config.hidden_size), np.float32)
        return engine.sequence(contexts, zero, zero)[0]
    lengths = np.maximum(1, np.count_nonzero(contexts, axis=1))  # an all-padding context: one masked step
    probs = np.zeros((len(contexts), config.vocab_size), np.float32)
    for length in np.unique(lengths):
        rows = np.flatnonzero(lengths == length)
        zero = np.zeros((config.num_layers, len(rows), config.hidden_size), np.float32)
        probs[rows] = engine.sequence(contexts[rows, -int(length):], zero, zero)[0]
    return probs


@dataclass(frozen=True)
class Miss(Record):
    """One way a file misses its contract or its tolerance: ``str()`` is the line a person reads."""

    file: str
    form: str | None  # "window", "step", "sequence"; None: the file as a whole
    detail: str  # "top1_agreement 0.95 (must be >= 0.97)", "has inputs/outputs ..."

    @property
    def phrase(self) -> str:
        """What missed, without the file's name."""
        return f"{self.form} form {self.detail}" if self.form else self.detail

    def __str__(self) -> str:
        return f"{self.file}: {self.phrase}"


def problems(file_name: str, results: dict, tolerance: Tolerance, expected_io: dict, engine_io: dict) -> list[Miss]:
    """Every way a file misses its contract or its tolerance."""
    found = [Miss(file_name, form, f"has inputs/outputs {engine_io.get(form)}, expected {io}")
             for form, io in expected_io.items() if engine_io.get(form) != io]
    for form in ("window", "step", "sequence"):
        if form in results:
            found += [Miss(file_name, form, miss) for miss in failures(results[form], tolerance)]
    if results.get("repeatable") is False:
        found.append(Miss(file_name, None, "two identical calls gave different outputs"))
    return found
