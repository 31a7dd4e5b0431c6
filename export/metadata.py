"""The metadata a model file carries, built from a loaded run (the typed contract is ``nextword.modelfile.contract``)."""

from __future__ import annotations

from nextword.modelfile.contract import ModelMetadata, SpecialIds, TrainingSummary, form_specs, padding_note


def build_metadata(loaded, fmt: str, precision: str, *, tensor_bytes: dict[str, int],
                   ops: tuple[str, ...] | None = None) -> ModelMetadata:
    """The metadata of the ``fmt`` file of this precision (its forms: ``contract.FORMS[fmt]``), for a training
    run (``LoadedRun``) or a Keras user's model file (``ImportedModel``, with its ``source``). A TFLite
    file's checksum is added when the file is assembled (``tflite_format.with_associated_files``)."""
    corpus = loaded.saved.get("corpus", {})
    training = loaded.saved.get("training", {})
    report = loaded.train_report()
    tokenizer = loaded.tokenizer
    return ModelMetadata(
        precision=precision,
        forms=form_specs(loaded.config, fmt),
        model=loaded.config,
        tokenizer=tokenizer.settings(),
        special_ids=SpecialIds(pad=0, unk=tokenizer.unk_id, eos=tokenizer.eos_id),
        training=TrainingSummary(
            corpus=corpus.get("name"), corpus_sha256=corpus.get("sha256"), lines=corpus.get("lines"),
            mode=training.get("mode"), epochs=report.get("training", {}).get("epochs_completed"),
            final_metrics=report.get("final", {})),
        ops=ops,
        tensor_bytes=tensor_bytes,
        padding=padding_note(loaded.config),
        source=getattr(loaded, "source", None),
    )
