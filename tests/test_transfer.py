"""Import is all or nothing: bad lines, a store failing midway, and (in test_crash) a kill -9."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from expscale_core import StoreError
from expscale_core.experience import Experience
from expscale_core.ops.transfer import import_jsonl
from expscale_core.store.edge import EdgeExperienceStore
from expscale_core.testing import make_engine


def test_import_is_all_or_nothing(tmp_path: Path) -> None:
    good = [Experience(kind="fact", content=f"fact {i}").model_dump_json() for i in range(70)]
    bad = json.dumps({"kind": "fact", "content": "x", "utility": float("nan")})
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join([*good[:64], bad, *good[64:]]) + "\n")
    with make_engine() as engine:
        with pytest.raises(ValueError, match=r"in\.jsonl:65"):
            import_jsonl(engine, path)
        assert engine.store.count() == 0


class _FailsSecondUpsert:
    """A real store whose second ``upsert`` fails, as when the disk fills or the server drops mid-import."""

    def __init__(self) -> None:
        self.inner = EdgeExperienceStore.temporary()
        self.upserts = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def upsert(self, items: Any) -> None:
        self.upserts += 1
        if self.upserts == 2:
            raise StoreError("simulated failure on the second batch")
        self.inner.upsert(items)


def test_an_import_the_store_fails_midway_restores_what_it_replaced(tmp_path: Path) -> None:
    store = _FailsSecondUpsert()
    old = [Experience(kind="fact", content=f"Old fact {i}.") for i in range(3)]
    replaced = [e.model_copy(update={"content": f"Imported over {e.id}."}) for e in old[:2]]
    path = tmp_path / "in.jsonl"
    path.write_text(
        "".join(
            e.model_dump_json() + "\n"
            for e in [*replaced, *(Experience(kind="fact", content=f"n{i}") for i in range(100))]
        )
    )
    with make_engine(store=store) as engine:  # type: ignore[arg-type]
        store.inner.upsert([(e, engine.embedder.embed([e.content])[0]) for e in old])
        with pytest.raises(StoreError):
            import_jsonl(engine, path)
        assert sorted(e.content for e, _ in engine.store.scan()) == [e.content for e in old]
        assert engine.queue.journal("import") == {}
