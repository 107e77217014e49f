"""The one settings object, read from ``EXPSCALE_*`` variables where the user builds it.

Nested sections use ``__``: ``EXPSCALE_LLM__MODEL=gpt-4o-mini``, ``EXPSCALE_STORE__URL=http://qdrant:6333``.
"""

from __future__ import annotations

import difflib
import os
import socket
import warnings
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "CaptureSettings",
    "DistillSettings",
    "EmbedderSettings",
    "ExpscaleSettings",
    "LLMSettings",
    "RedactSettings",
    "RefineSettings",
    "RetrieveSettings",
    "ScreenSettings",
    "StoreSettings",
    "settings_error",
]


class LLMSettings(BaseModel):
    """An OpenAI-compatible chat server. No model configured means the no-LLM distiller."""

    model: str | None = None
    base_url: str | None = None
    api_key: SecretStr | None = None
    timeout_s: float = Field(default=60.0, gt=0)
    max_retries: int = Field(default=4, ge=0)
    structured_output: bool = True
    temperature: float = Field(default=0.0, ge=0, le=2)
    max_tokens: int | None = Field(default=1024, ge=16, description="output bound per distill/refine call")


class EmbedderSettings(BaseModel):
    """Which embedder turns text into vectors."""

    provider: Literal["minilm", "openai", "hash"] = "minilm"
    model_path: Path | None = None
    tokenizer_path: Path | None = None
    openai_model: str = "text-embedding-3-small"
    openai_dimensions: int | None = None
    batch_size: int = Field(default=32, ge=1)
    cache_size: int = Field(default=4096, ge=0)
    hash_dimension: int = Field(default=256, ge=16)


class StoreSettings(BaseModel):
    """Where experiences live: a Qdrant server at ``url``, or embedded (Qdrant Edge) under ``path``
    (default ``<data_dir>/store``); ``path=":memory:"`` is a temporary store deleted on close."""

    url: str | None = None
    api_key: SecretStr | None = None
    path: str | None = None
    collection: str = Field(default="expscale_experiences", min_length=1)
    min_free_mb: float = Field(
        default=16.0,
        ge=0,
        description="embedded store: refuse a write (StoreError, the episode stays queued) that would leave less "
        "free disk than this; a full disk under Qdrant Edge's memory maps would otherwise kill the process",
    )


class CaptureSettings(BaseModel):
    """How captured episodes reach the durable queue."""

    commit_interval_s: float = Field(
        default=0.05,
        ge=0,
        le=60,
        description="group commit: record() only buffers in memory and a writer thread commits within this "
        "interval (a kill -9 can lose the last interval's episodes); 0 commits inside record()",
    )
    max_field_chars: int = Field(
        default=200_000,
        ge=1_000,
        description="a captured text longer than this (an input, a tool output, a prompt) is shortened in the "
        "middle with a marker, so one huge value cannot stall capture or fill the queue",
    )


class RedactSettings(BaseModel):
    """Redaction the engine applies to everything it stores (capture, feedback, imports)."""

    builtin: list[Literal["api_keys", "emails", "cards"]] = Field(
        default_factory=list, description="built-in patterns to redact, e.g. EXPSCALE_REDACT__BUILTIN='[\"api_keys\"]'"
    )


class ScreenSettings(BaseModel):
    """Screening of new lessons for prompt injection. The pattern screen always runs."""

    llm: bool = Field(
        default=False,
        description="also ask the configured LLM (EXPSCALE_LLM__MODEL) whether each new lesson serves the user or "
        "someone else; one extra call per lesson, catches poison worded as ordinary advice",
    )


class ShareSettings(BaseModel):
    """Who learns from whom (:mod:`expscale_core.share`): lessons from untrusted sources stay private to the
    scope that taught them until corroborated or approved; trusted ones are shared at once."""

    corroborations: int = Field(
        default=2,
        ge=1,
        description="distinct sources that must teach a lesson before it is shared beyond its scope (1: at once)",
    )
    corroboration_threshold: float = Field(
        default=0.9, gt=0, le=1, description="similarity at which two sources' lessons count as the same lesson"
    )
    trusted_visibility: Literal["shared", "private"] = Field(
        default="shared", description="what a trusted or corroborated lesson becomes: shared with its namespace"
    )
    publish_to: list[str] = Field(
        default_factory=list,
        description="scopes that also read trusted or corroborated lessons, e.g. "
        "EXPSCALE_SHARE__PUBLISH_TO='[\"acme/agent=billing\"]' (namespace, then field=value parts)",
    )

    @field_validator("publish_to")
    @classmethod
    def _scopes(cls, value: list[str]) -> list[str]:
        from expscale_core.scope import Scope

        return [Scope.parse(v).key() for v in value]


class DistillSettings(BaseModel):
    """How the background worker takes episodes off the durable queue."""

    batch_size: int = Field(default=8, ge=1)
    delay_s: float = Field(
        default=2.0, ge=0, le=86_400, description="wait this long after capture, so feedback can arrive"
    )
    idle_s: float = Field(default=0.05, ge=0, le=60, description="distill only after the caller was quiet this long")
    max_attempts: int = Field(default=5, ge=1)
    retry_backoff_s: float = Field(default=5.0, ge=0, le=3600)
    similar_k: int = Field(default=5, ge=0, description="existing experiences shown to the distiller, at most")
    related_min_similarity: float = Field(
        default=0.45,
        ge=-1,
        le=1,
        description="an existing experience is offered to the distiller (and may be updated, superseded or "
        "reinforced) only if it is at least this similar to the episode; a targeted decision whose lesson is "
        "less similar than this to its target becomes a new experience instead",
    )
    prompt_budget_tokens: int | None = Field(
        default=1000,
        ge=200,
        description="bound on the distill prompt (estimated tokens); fit it to the model's context window",
    )
    replay: bool = Field(
        default=True,
        description="LLM distiller: admit a rule learned from a correction only if the model, given the rule alone, "
        "answers the original request as corrected (one short extra call per corrected episode)",
    )


class RetrieveSettings(BaseModel):
    """Ranking and rendering of retrieved experiences."""

    k: int = Field(default=5, ge=1)
    min_score: float = Field(default=0.3, ge=-1, le=1)
    similarity_weight: float = Field(default=0.8, ge=0)
    utility_weight: float = Field(default=0.15, ge=0)
    recency_weight: float = Field(default=0.05, ge=0)
    recency_half_life_days: float = Field(default=30.0, gt=0)
    token_budget: int = Field(default=400, ge=16)
    credit_min_similarity: float = Field(
        default=0.5,
        ge=-1,
        le=1,
        description="feedback credits a served experience only if it was this similar to the query; below it, "
        "the answer most likely did not rely on it",
    )
    harmful_deployment_factor: float = Field(
        default=1.0,
        ge=0,
        le=1,
        description="multiplies the score of lessons first written by a deployment whose served lessons were rated "
        "harmful more often than helpful (10 ratings or more, as of the last refine); 1 leaves them alone, 0 hides "
        "them",
    )


class RefineSettings(BaseModel):
    """Periodic refinement of the store."""

    every_n_experiences: int | None = Field(default=50, ge=1)
    every_s: float | None = Field(default=None, gt=0)
    duplicate_threshold: float = Field(default=0.92, gt=0, le=1)
    contradiction_threshold: float = Field(default=0.8, gt=0, le=1)
    utility_half_life_days: float = Field(default=60.0, gt=0)
    max_experiences: int | None = Field(default=10_000, ge=1, description="active experiences per tenant")
    max_tokens: int | None = Field(default=None, ge=1, description="active experience tokens per tenant")
    max_experiences_total: int | None = Field(default=None, ge=1, description="active experiences in the store")
    lease_s: float = Field(
        default=300.0, gt=0, description="refine lease: engines sharing one store refine one at a time"
    )
    induce_rules: bool = Field(
        default=True, description="with an LLM: write the rule that several verified examples share (grow and refine)"
    )
    induce_threshold: float = Field(default=0.6, gt=0, le=1, description="similarity at which examples share a rule")
    max_inductions: int = Field(default=8, ge=0, description="rule inductions tried per refine run (LLM cost bound)")


class ExpscaleSettings(BaseSettings):
    """All of expscale's configuration. Construct it where your program starts.

    Example:
        >>> s = ExpscaleSettings(data_dir="/tmp/exp", embedder={"provider": "hash"})
        >>> s.qdrant_path()
        '/tmp/exp/qdrant'
    """

    model_config = SettingsConfigDict(env_prefix="EXPSCALE_", env_nested_delimiter="__", extra="forbid")

    data_dir: Path = Path(".expscale")
    deployment: str = Field(default_factory=socket.gethostname, min_length=1, max_length=200)
    """Recorded in the provenance of every experience this process distills: which app server, agent or model
    setup taught it, when several share one store. Default: the host name."""
    llm: LLMSettings = Field(default_factory=LLMSettings)
    capture: CaptureSettings = Field(default_factory=CaptureSettings)
    redact: RedactSettings = Field(default_factory=RedactSettings)
    screen: ScreenSettings = Field(default_factory=ScreenSettings)
    share: ShareSettings = Field(default_factory=ShareSettings)
    embedder: EmbedderSettings = Field(default_factory=EmbedderSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    distill: DistillSettings = Field(default_factory=DistillSettings)
    retrieve: RetrieveSettings = Field(default_factory=RetrieveSettings)
    refine: RefineSettings = Field(default_factory=RefineSettings)

    @model_validator(mode="after")
    def _openai_embedder_needs_endpoint(self) -> ExpscaleSettings:
        if self.embedder.provider == "openai" and not (self.llm.base_url or self.llm.api_key):
            raise ValueError(
                "embedder.provider='openai' needs an endpoint: set EXPSCALE_LLM__BASE_URL and/or "
                "EXPSCALE_LLM__API_KEY, or use EXPSCALE_EMBEDDER__PROVIDER=minilm for the local model"
            )
        return self

    @model_validator(mode="after")
    def _llm_screen_needs_llm(self) -> ExpscaleSettings:
        if self.screen.llm and not self.llm.model:
            raise ValueError(
                "screen.llm=true needs a model to ask: set EXPSCALE_LLM__MODEL (and EXPSCALE_LLM__BASE_URL for a "
                "local server), or unset EXPSCALE_SCREEN__LLM to screen by patterns only"
            )
        return self

    @model_validator(mode="after")
    def _warn_unknown_variables(self) -> ExpscaleSettings:
        # pydantic-settings ignores EXPSCALE_* variables it does not know; a typo would silently do nothing.
        known = _env_names(type(self))
        for name in sorted(os.environ):
            upper = name.upper()
            # EXPSCALE_TEST_* configure the test suite (a real model for the real_llm tests), not the library.
            if upper.startswith("EXPSCALE_") and not upper.startswith("EXPSCALE_TEST_") and upper not in known:
                close = difflib.get_close_matches(upper, known, n=1, cutoff=0.6)
                hint = f"; did you mean {close[0]}?" if close else ""
                warnings.warn(f"unknown setting {name} is ignored{hint}", UserWarning, stacklevel=2)
        return self

    def qdrant_path(self) -> str:
        """Where expscale 0.1 kept its embedded qdrant-client folder: ``store.path`` if set, else
        ``<data_dir>/qdrant`` (read only to migrate it)."""
        return self.store.path or str(self.data_dir / "qdrant")

    def store_path(self) -> Path:
        """The embedded Qdrant Edge store: ``<store.path or data_dir/store>/<collection>``."""
        root = Path(self.store.path) if self.store.path else self.data_dir / "store"
        return root / self.store.collection

    def in_memory(self) -> bool:
        """``EXPSCALE_STORE__PATH=:memory:``: nothing is written to the data dir (the queue is in memory too)."""
        return self.store.path == ":memory:" and not self.store.url

    def queue_path(self) -> str:
        return ":memory:" if self.in_memory() else str(self.data_dir / "episodes.sqlite3")


def _env_names(model: type[BaseModel], prefix: str = "EXPSCALE_") -> list[str]:
    names = []
    for field, info in model.model_fields.items():
        name = f"{prefix}{field.upper()}"
        names.append(name)
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _env_names(annotation, f"{name}__")
    return names


def settings_error(exc: ValidationError) -> str:
    """A settings validation error in the words the user set them: ``EXPSCALE_RETRIEVE__K``, not ``retrieve.k``."""
    parts = []
    for err in exc.errors():
        loc = [str(x) for x in err["loc"] if not str(x).isdigit()]
        variable = "EXPSCALE_" + "__".join(x.upper() for x in loc) if loc else "EXPSCALE_*"
        value: Any = err.get("input")
        shown = f" (got {value!r})" if not isinstance(value, dict) else ""
        parts.append(f"{variable}: {err['msg']}{shown}")
    return "invalid settings: " + "; ".join(parts) + ". Fix the environment variable or the argument named."
