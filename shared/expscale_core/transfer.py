"""Export and import of experiences as JSON Lines. Import re-embeds with the current embedder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from expscale_core.experience import Experience
from expscale_core.screen import quarantine_suspect

if TYPE_CHECKING:
    from expscale_core.engine import ExperienceEngine

__all__ = ["export_jsonl", "import_jsonl"]

_BATCH = 64


def export_jsonl(engine: ExperienceEngine, path: str | Path, *, progress: Callable[[int], None] | None = None) -> int:
    """Write every experience (all scopes and statuses) to ``path``, one JSON object a line."""
    engine.store.ensure_collection(engine.embedder.dimension)
    n = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for exp, _ in engine.store.scan():
            out.write(exp.model_dump_json() + "\n")
            n += 1
            if progress is not None:
                progress(1)
    return n


def _read(path: Path) -> Iterator[Experience]:
    with path.open(encoding="utf-8") as src:
        for lineno, line in enumerate(src, 1):
            if not line.strip():
                continue
            try:
                yield Experience.model_validate_json(line)
            except ValidationError as exc:
                raise ValueError(
                    f"{path}:{lineno} is not an exported experience ({exc.error_count()} errors, first: "
                    f"{exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}); export files come from `expscale export`"
                ) from exc


def import_jsonl(engine: ExperienceEngine, path: str | Path, *, progress: Callable[[int], None] | None = None) -> int:
    """Insert or replace experiences from ``path``, embedding them with the engine's embedder.

    All or nothing: every line is validated before anything is written, and if the store fails midway the
    experiences this import added are removed again. Imported text goes through the engine's redactor and
    the injection screen (suspect lessons arrive quarantined).
    """
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no export file at {source}")
    engine.store.ensure_collection(engine.embedder.dimension)
    redact = engine.redact
    items: list[Experience] = []
    for exp in _read(source):
        update: dict[str, object] = {
            "provenance": exp.provenance.model_copy(update={"embedding_model": engine.embedder.model_id})
        }
        if redact is not None:
            update |= {"content": redact(exp.content), "applicability": redact(exp.applicability)}
        items.append(quarantine_suspect(exp.model_copy(update=update)))
    existing = {e.id for e, _ in engine.store.get([e.id for e in items])}
    written: list[str] = []
    try:
        for start in range(0, len(items), _BATCH):
            batch = items[start : start + _BATCH]
            vectors = engine.embedder.embed([e.embedding_text() for e in batch])
            engine.store.upsert(list(zip(batch, vectors)))
            written += [e.id for e in batch]
            if progress is not None:
                progress(len(batch))
    except BaseException:
        engine.store.delete([i for i in written if i not in existing])
        raise
    return len(items)
