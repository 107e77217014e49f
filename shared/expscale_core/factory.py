"""Building an engine's collaborators from settings: the only place settings turn into clients."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from expscale_core.capture.redact import build_redactor
from expscale_core.distill.base import Distiller
from expscale_core.distill.llm_distiller import LLMDistiller
from expscale_core.distill.rules import RulesDistiller
from expscale_core.embed.base import CachedEmbedder, Embedder
from expscale_core.embed.hashing import HashEmbedder
from expscale_core.embed.minilm import MiniLMEmbedder
from expscale_core.embed.openai_embedder import OpenAIEmbedder
from expscale_core.episodes.queue import EpisodeQueue
from expscale_core.errors import CollectionMismatchError, ConfigError, StoreError, StoreLockedError
from expscale_core.llm import LLM, OpenAILLM
from expscale_core.safety.screen_llm import LLMScreen
from expscale_core.settings import ExpscaleSettings, settings_error
from expscale_core.store.base import ExperienceStore

if TYPE_CHECKING:
    import openai

log = logging.getLogger(__name__)

__all__ = ["build_collaborators", "build_embedder", "build_llm", "build_openai_client", "build_store"]

_COLLABORATORS = {
    "store",
    "embedder",
    "distiller",
    "llm",
    "queue",
    "scope",
    "clock",
    "autostart",
    "redact",
    "screen_llm",
    "deployment",
}


def build_openai_client(settings: ExpscaleSettings) -> openai.OpenAI:
    import openai

    api_key = settings.llm.api_key.get_secret_value() if settings.llm.api_key else None
    if api_key is None and settings.llm.base_url:
        api_key = "not-needed"  # local OpenAI-compatible servers usually ignore the key, but the client wants one
    if api_key is None and not os.environ.get("OPENAI_API_KEY"):
        raise ConfigError(
            "an LLM is configured (EXPSCALE_LLM__MODEL) but there is no API key: set EXPSCALE_LLM__API_KEY "
            "(or OPENAI_API_KEY), or EXPSCALE_LLM__BASE_URL for a local OpenAI-compatible server"
        )
    return openai.OpenAI(
        api_key=api_key,
        base_url=settings.llm.base_url,
        timeout=settings.llm.timeout_s,
        max_retries=settings.llm.max_retries,
    )


def build_llm(settings: ExpscaleSettings) -> LLM | None:
    if not settings.llm.model:
        return None
    return OpenAILLM(
        build_openai_client(settings),
        model=settings.llm.model,
        structured_output=settings.llm.structured_output,
        temperature=settings.llm.temperature,
        max_tokens=settings.llm.max_tokens,
    )


def build_embedder(settings: ExpscaleSettings) -> Embedder:
    s = settings.embedder
    inner: Embedder
    if s.provider == "hash":
        inner = HashEmbedder(s.hash_dimension)
    elif s.provider == "openai":
        inner = OpenAIEmbedder(build_openai_client(settings), model=s.openai_model, dimension=s.openai_dimensions)
    else:
        inner = MiniLMEmbedder(s.model_path, s.tokenizer_path)
    return CachedEmbedder(inner, cache_size=s.cache_size, batch_size=s.batch_size)


def build_store(settings: ExpscaleSettings, dimension: int) -> ExperienceStore:
    """A server store for ``store.url``; else the embedded Qdrant Edge store in the data dir, migrating a
    data dir written by expscale 0.1 (qdrant-client's local folder) first."""
    from expscale_core.store.edge import EdgeExperienceStore
    from expscale_core.store.migrate import legacy_collection_dir, migrate_legacy
    from expscale_core.store.qdrant import QdrantExperienceStore

    s = settings.store
    if s.url and s.path:
        raise ConfigError(
            f"both a Qdrant server (EXPSCALE_STORE__URL={s.url}) and an embedded folder "
            f"(EXPSCALE_STORE__PATH={s.path}) are configured; unset one of them"
        )
    if s.url:
        try:
            return QdrantExperienceStore.open(
                url=s.url, api_key=s.api_key.get_secret_value() if s.api_key else None, collection=s.collection
            )
        except (ValueError, TypeError) as exc:  # qdrant-client's word for a malformed URL
            raise ConfigError(
                f"EXPSCALE_STORE__URL={s.url!r} is not a usable Qdrant URL ({exc}); write it like "
                "http://localhost:6333 or https://xyz.cloud.qdrant.io:6333"
            ) from exc
    if s.path == ":memory:":
        return EdgeExperienceStore.temporary()
    target = settings.store_path()
    legacy_root = Path(settings.qdrant_path())
    if legacy_collection_dir(legacy_root, s.collection) is not None and not (target / "edge_config.json").exists():
        migrate_legacy(legacy_root, s.collection, target, dimension)
    return EdgeExperienceStore(target, min_free_mb=s.min_free_mb)


def build_collaborators(settings: ExpscaleSettings | None, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of :class:`~expscale_core.engine.ExperienceEngine` for ``settings`` (read from the
    environment when None), with ``overrides`` in place of the collaborators they name."""
    unknown = set(overrides) - _COLLABORATORS
    if unknown:
        raise TypeError(f"unknown override(s) {sorted(unknown)}; allowed: {sorted(_COLLABORATORS)}")
    if settings is None:
        try:
            settings = ExpscaleSettings()
        except ValidationError as exc:
            raise ConfigError(settings_error(exc)) from exc
    elif not isinstance(settings, ExpscaleSettings):
        raise TypeError(f"settings must be ExpscaleSettings, not {type(settings).__name__}")
    if "queue" not in overrides and not settings.in_memory():
        _check_data_dir(settings.data_dir)
    llm = overrides.pop("llm") if "llm" in overrides else build_llm(settings)
    embedder = overrides.pop("embedder", None) or build_embedder(settings)
    distiller: Distiller = overrides.pop("distiller", None) or (
        LLMDistiller(llm, prompt_budget_tokens=settings.distill.prompt_budget_tokens, replay=settings.distill.replay)
        if llm is not None
        else RulesDistiller()
    )
    store = overrides.pop("store", None) or build_store(settings, embedder.dimension)
    try:
        try:
            store.ensure_collection(embedder.dimension)
        except (CollectionMismatchError, StoreLockedError):
            raise  # configuration problems: the message says how to fix them
        except StoreError as exc:
            # A server that is down must not stop the app: it serves without memory, episodes queue locally,
            # and the store is set up on first use once it answers.
            log.warning("experience store unreachable at start-up, continuing without it for now: %s", exc)
        queue = overrides.pop("queue", None) or EpisodeQueue(
            settings.queue_path(),
            delay_s=settings.distill.delay_s,
            commit_interval_s=settings.capture.commit_interval_s,
            max_field_chars=settings.capture.max_field_chars,
        )
    except Exception:
        store.close()
        raise
    return dict(
        store=store,
        embedder=embedder,
        distiller=distiller,
        queue=queue,
        llm=llm,
        retrieve_settings=settings.retrieve,
        distill_settings=settings.distill,
        refine_settings=settings.refine,
        capture_settings=settings.capture,
        share_settings=settings.share,
        redact=build_redactor(settings.redact.builtin, overrides.pop("redact", None)),
        screen_llm=overrides.pop("screen_llm", None) or (LLMScreen(llm) if settings.screen.llm and llm else None),
        deployment=overrides.pop("deployment", settings.deployment),
        **overrides,
    )


def _check_data_dir(path: Path) -> None:
    """Refuse a data dir this process cannot write, in one line, before anything half-opens inside it."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".expscale-write-check-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(
            f"the data dir {path} is not writable ({exc.strerror or exc}); set EXPSCALE_DATA_DIR (data_dir= in "
            "ExpscaleSettings, --data-dir on the CLI) to a directory this process can write"
        ) from exc
