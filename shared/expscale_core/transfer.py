"""Export and import of experiences as JSON Lines. Import re-embeds with the current embedder."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import ValidationError

from expscale_core.experience import Experience

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
    """Insert or replace experiences from ``path``, embedding them with the engine's embedder."""
    source = Path(path)
    if not source.is_file():
        raise FileNotFoundError(f"no export file at {source}")
    engine.store.ensure_collection(engine.embedder.dimension)
    batch: list[Experience] = []
    n = 0

    def flush() -> None:
        vectors = engine.embedder.embed([e.embedding_text() for e in batch])
        engine.store.upsert(list(zip(batch, vectors)))
        if progress is not None:
            progress(len(batch))
        batch.clear()

    for exp in _read(source):
        batch.append(
            exp.model_copy(
                update={"provenance": exp.provenance.model_copy(update={"embedding_model": engine.embedder.model_id})}
            )
        )
        n += 1
        if len(batch) >= _BATCH:
            flush()
    if batch:
        flush()
    return n
