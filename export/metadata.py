"""The metadata a model file carries, built from a loaded run (the typed contract is ``nextword.modelfile.contract``)."""

from __future__ import annotations

from nextword.modelfile.contract import ModelMetadata, SpecialIds, TrainingSummary, form_specs, padding_note


def build_metadata(loaded, fmt: str, precision: str, *, tensor_bytes: dict[str, int],
                   ops: tuple[str, ...] | None = None) -> ModelMetadata:
    """The metadata of the ``fmt`` file of this precision (its forms: ``contract.FORMS[fmt]``), for a training
    run (``LoadedRun``) or a Keras user's model file (``ImportedModel``, with its ``source``). A TFLite
    file's checksum is added when the file is assembled (``tflite_format.with_associated_files``)."""
    saved, report = loaded.saved, loaded.train_report()  # both None for a Keras user's model file
    training = TrainingSummary() if saved is None else TrainingSummary(
        corpus=saved.corpus.name, corpus_sha256=saved.corpus.sha256, lines=saved.corpus.lines,
        mode=saved.training.mode, epochs=report.training.epochs_completed if report else None,
        final_metrics=report.final if report else {})
    tokenizer = loaded.tokenizer
    return ModelMetadata(
        precision=precision,
        forms=form_specs(loaded.config, fmt),
        model=loaded.config,
        tokenizer=tokenizer.settings(),
        special_ids=SpecialIds(pad=0, unk=tokenizer.unk_id, eos=tokenizer.eos_id),
        training=training,
        ops=ops,
        tensor_bytes=tensor_bytes,
        padding=padding_note(loaded.config),
        source=getattr(loaded, "source", None),
    )
