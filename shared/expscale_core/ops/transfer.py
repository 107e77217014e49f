"""Export and import of experiences as JSON Lines. Import re-embeds with the current embedder."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ValidationError

from expscale_core.embed.base import Embedder
from expscale_core.embed.keys import embed_keys
from expscale_core.episodes.queue import EpisodeQueue
from expscale_core.errors import ExpscaleError, ScopeError
from expscale_core.experience import Experience
from expscale_core.ops.deletion import Tombstones
from expscale_core.safety.screen import quarantine_suspect
from expscale_core.store.base import ExperienceStore

__all__ = ["Memory", "export_jsonl", "import_jsonl", "undo_interrupted_import"]

log = logging.getLogger(__name__)
_BATCH = 64
_JOURNAL = "import"
# One import at a time per process, and no undo while one runs: an undo in between would remove the records of
# an import in progress (same process, same journal owner), which would then report success.
_IMPORTING = threading.RLock()


class Memory(Protocol):
    """What export and import work on: an :class:`~expscale_core.engine.ExperienceEngine` is one."""

    store: ExperienceStore
    embedder: Embedder
    queue: EpisodeQueue
    redact: Callable[[str], str] | None
    screen_llm: Callable[[str, str], list[str]] | None


def export_jsonl(engine: Memory, path: str | Path, *, progress: Callable[[int], None] | None = None) -> int:
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


def import_jsonl(engine: Memory, path: str | Path, *, progress: Callable[[int], None] | None = None) -> int:
    """Insert or replace experiences from ``path``, embedding them with the engine's embedder.

    All or nothing: every line is validated before anything is written; if the store fails midway, the store
    is put back as it was (added records removed, replaced ones restored), and if the process is killed
    midway, the next engine on this data dir does that on start-up. Imported text goes through the engine's
    redactor and the injection screens, the pattern screen and the LLM screen when the engine has one (suspect
    lessons arrive quarantined). Records keep the visibility they were exported with: importing is an operator's
    act.
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
            update |= {
                "content": redact(exp.content),
                "applicability": redact(exp.applicability),
                "phrasings": [redact(p) for p in exp.phrasings],
            }
        exp = exp.model_copy(update=update)
        reviewed = engine.screen_llm(exp.content, exp.situation()) if engine.screen_llm is not None else []
        items.append(quarantine_suspect(exp, also=reviewed))
    kept = _not_deleted(items, engine.store)
    if len(kept) < len(items):
        log.warning("%d experiences not imported: they hold episodes or scopes deleted since", len(items) - len(kept))
    with _IMPORTING:
        return _write_all_or_nothing(engine, kept, progress)


def _not_deleted(items: list[Experience], store: ExperienceStore) -> list[Experience]:
    """An export made before a ``delete()`` must not bring the deleted text back."""
    deleted = Tombstones(store)
    deleted.pull()
    return [e for e in items if not deleted.kills(e, since=0)]


def _write_all_or_nothing(engine: Memory, items: list[Experience], progress: Callable[[int], None] | None) -> int:
    undo_interrupted_import(engine.store, engine.queue, engine.embedder.dimension)
    undo: dict[str, str | None] = dict.fromkeys(e.id for e in items)
    existing = engine.store.get(list(undo), with_vectors=True)
    _refuse_scope_moves(items, [e for e, _ in existing])
    undo |= {e.id: _Saved(experience=e, vector=v).model_dump_json() for e, v in existing}
    engine.queue.journal_begin(_JOURNAL, undo)
    try:
        for start in range(0, len(items), _BATCH):
            batch = items[start : start + _BATCH]
            engine.store.upsert(list(zip(batch, embed_keys(engine.embedder, batch))))
            if progress is not None:
                progress(len(batch))
    except BaseException:
        try:
            undo_interrupted_import(engine.store, engine.queue, engine.embedder.dimension)
        except ExpscaleError as exc:  # the journal stays; the next start-up finishes the undo
            log.warning("could not undo the failed import yet (%s); the next engine start will", exc)
        raise
    engine.queue.journal_clear(_JOURNAL)
    return len(items)


def _refuse_scope_moves(items: list[Experience], existing: list[Experience]) -> None:
    """A line may replace a record of its own scope, never take over another scope's record by its id."""
    scope_of = {e.id: e.scope for e in existing}
    for exp in items:
        owner = scope_of.get(exp.id)
        if owner is not None and owner != exp.scope:
            raise ScopeError(
                f"the import would move experience {exp.id} from scope {owner.key()} to {exp.scope.key()}; an "
                "import never moves a record between scopes, so nothing was imported: fix the line's scope, or "
                "drop its id to import it as a new record"
            )


class _Saved(BaseModel):
    """A record as it was before an import replaced it."""

    experience: Experience
    vector: list[float] | None


def undo_interrupted_import(store: ExperienceStore, queue: EpisodeQueue, dimension: int) -> int:
    """Put the store back as it was before an import that did not finish (failed, or its process was killed).
    Returns how many records were restored or removed; 0 when no import was interrupted."""
    with _IMPORTING:
        undo = queue.journal(_JOURNAL)
        if not undo:
            return 0
        _restore(store, dimension, undo)
        queue.journal_clear(_JOURNAL)
        return len(undo)


def _restore(store: ExperienceStore, dimension: int, undo: dict[str, str | None]) -> None:
    store.ensure_collection(dimension)
    saved = [_Saved.model_validate_json(v) for v in undo.values() if v is not None]
    store.delete([i for i, v in undo.items() if v is None])
    store.upsert([(s.experience, s.vector) for s in saved if s.vector is not None])
    store.update([s.experience for s in saved if s.vector is None])
