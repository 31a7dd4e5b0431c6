"""The metadata a model file carries, built from a loaded run (the typed contract is ``nextword.contract``)."""

from __future__ import annotations

from nextword.contract import Checksum, Companion, ModelMetadata, SpecialIds, TrainingSummary, form_specs
from nextword.train.loading import LoadedRun


def build_metadata(loaded: LoadedRun, precision: str, graph: str, *, companion: Companion | None = None,
                   checksum: Checksum | None = None, ops: tuple[str, ...] | None = None) -> ModelMetadata:
    """``graph`` is ``window``, ``step`` or ``window+step``: the forms this one file holds."""
    forms = form_specs(loaded.config)
    corpus = loaded.saved.get("corpus", {})
    training = loaded.saved.get("training", {})
    report = loaded.train_report()
    tokenizer = loaded.tokenizer
    return ModelMetadata(
        precision=precision,
        graph=graph,
        forms={name: spec for name, spec in forms.items() if name in graph.split("+")},
        model=loaded.config,
        tokenizer=tokenizer.settings(),
        special_ids=SpecialIds(pad=0, unk=tokenizer.unk_id, eos=tokenizer.eos_id),
        training=TrainingSummary(
            corpus=corpus.get("name"), corpus_sha256=corpus.get("sha256"), lines=corpus.get("lines"),
            mode=training.get("mode"), epochs=report.get("training", {}).get("epochs_completed"),
            final_metrics=report.get("final", {})),
        companion=companion,
        checksum=checksum,
        ops=ops,
    )
