"""Moving a data dir written by expscale 0.1 (qdrant-client's local folder) to the Qdrant Edge store.

The copy is lossless: every point keeps its id, vector and payload, and the counts are compared before the
old folder is renamed to ``<folder>.pre-edge-backup``. It is kept until the first ``delete()``: a backup
that still holds deleted text would break deletion's promise, so the store removes it then (noted beside the
store in ``<store>.migration-backup``). If anything fails, the old folder stays where it was and the
half-written new store is removed, so the next start tries again.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from expscale_core.errors import StoreError
from expscale_core.store.edge import EdgeExperienceStore

__all__ = ["BACKUP_NOTE_SUFFIX", "legacy_collection_dir", "migrate_legacy"]

log = logging.getLogger(__name__)
_BATCH = 2048
BACKUP_NOTE_SUFFIX = ".migration-backup"


def legacy_collection_dir(legacy_root: Path, collection: str) -> Path | None:
    """The qdrant-client local folder for ``collection`` under ``legacy_root``, if one exists."""
    candidate = legacy_root / "collection" / collection
    return candidate if (candidate / "storage.sqlite").exists() else None


def migrate_legacy(legacy_root: Path, collection: str, target: Path, dimension: int) -> int:
    """Copy ``collection`` from the qdrant-client folder ``legacy_root`` into an Edge store at ``target``.

    Returns how many experiences were copied. Raises :class:`StoreError` (nothing changed) on failure.
    """
    from expscale_core.store.qdrant import QdrantExperienceStore

    if (target / "edge_config.json").exists():
        raise StoreError(
            f"both {legacy_root} (expscale 0.1) and {target} exist; remove or rename one of them, "
            "or point EXPSCALE_DATA_DIR at the one to keep"
        )
    source = QdrantExperienceStore.open(path=str(legacy_root), collection=collection)
    dest = EdgeExperienceStore(target)
    try:
        source.ensure_collection(dimension)
        dest.ensure_collection(dimension)
        batch = []
        copied = 0
        for exp, vec in source.scan(with_vectors=True):
            if vec is None:
                raise StoreError(f"experience {exp.id} in {legacy_root} has no vector; not migrating")
            batch.append((exp, vec))
            if len(batch) >= _BATCH:
                dest.upsert(batch)
                copied += len(batch)
                batch = []
        dest.upsert(batch)
        copied += len(batch)
        expected = source.count()
        if dest.count() != expected or copied != expected:
            raise StoreError(f"migration copied {dest.count()} of {expected} experiences; the old store is untouched")
        dest.flush()
    except BaseException:
        dest.close()
        shutil.rmtree(target, ignore_errors=True)
        source.close()
        raise
    dest.close()
    source.close()
    if target.resolve().is_relative_to(legacy_root.resolve()):
        # EXPSCALE_STORE__PATH pointed at the old folder, and the new store lives inside it: keep only the old
        # client's files aside.
        backup = legacy_root / "qdrant.pre-edge-backup"
        backup.mkdir()
        for name in ("collection", "meta.json", ".lock"):
            if (legacy_root / name).exists():
                (legacy_root / name).rename(backup / name)
    else:
        backup = legacy_root.with_name(legacy_root.name + ".pre-edge-backup")
        legacy_root.rename(backup)
    target.with_name(target.name + BACKUP_NOTE_SUFFIX).write_text(str(backup.resolve()))
    log.warning(
        "migrated %d experiences from %s (expscale 0.1, qdrant-client local) to the Qdrant Edge store at %s; "
        "the old folder is kept at %s until the first delete() (which removes it) and can be deleted once you "
        "are satisfied",
        copied,
        legacy_root,
        target,
        backup,
    )
    return copied
