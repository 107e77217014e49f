"""Experiences: the compact, reusable knowledge distilled from episodes."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum

from pydantic import BaseModel, ConfigDict, Field, field_validator

from expscale_core.episode import utcnow
from expscale_core.scope import Scope

__all__ = [
    "MAX_PHRASINGS",
    "PHRASING_SEPARATOR",
    "Experience",
    "ExperienceKind",
    "ExperienceStatus",
    "Provenance",
    "ScoredExperience",
    "Visibility",
]

PHRASING_SEPARATOR = "; "
"""Between the request phrasings an applicability lists (the LLM distiller writes them so)."""
MAX_PHRASINGS = 4
"""Retrieval keys a record holds besides its own vector."""


class ExperienceKind(str, Enum):
    STRATEGY = "strategy"
    FACT = "fact"
    PROCEDURE = "procedure"
    PITFALL = "pitfall"


class ExperienceStatus(str, Enum):
    ACTIVE = "active"
    SUPERSEDED = "superseded"
    ARCHIVED = "archived"
    QUARANTINED = "quarantined"


class Visibility(str, Enum):
    """Who reads an experience besides its own scope (:mod:`expscale_core.share`).

    ``private``: reads of the scope that taught it (and of narrower scopes within it) only. ``shared``: every read
    in its namespace, within its tenant (a tenant is a wall). Either way it also reaches the scopes it is
    published to (``Experience.published_to``), which is set by configuration only."""

    PRIVATE = "private"
    SHARED = "shared"


class Provenance(BaseModel):
    """Where an experience came from."""

    model_config = ConfigDict(extra="forbid")

    source_episode_ids: list[str] = Field(default_factory=list)
    distiller: str = "unknown"
    prompt_version: str | None = None
    merge_parents: list[str] = Field(default_factory=list)
    embedding_model: str | None = None
    repairs: list[str] = Field(default_factory=list)
    """Fixes applied to the distiller's output to keep the lesson (an invalid target turned into ADD, ...)."""
    deployments: list[str] = Field(default_factory=list)
    """The deployments (``EXPSCALE_DEPLOYMENT``) whose episodes taught or confirmed it, first writer first;
    merges keep the union. ``expscale stats`` breaks quality down by them."""
    sources: list[str] = Field(default_factory=list)
    """The distinct sources that taught or confirmed it (a user's scope, or the ``source=`` feedback named): one
    user repeating himself is one source. Promotion counts them (:mod:`expscale_core.share.promote`)."""
    trusted: bool = False
    """A trusted source (the application itself, a reviewer) taught or confirmed it."""


class Experience(BaseModel):
    """A reusable lesson: a strategy, fact, procedure or pitfall, with its statistics.

    Example:
        >>> exp = Experience(kind="fact", content="Paris is the capital of France.",
        ...                  applicability="questions about France's capital")
        >>> exp.status.value
        'active'
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    kind: ExperienceKind
    content: str = Field(min_length=1)
    applicability: str = ""
    phrasings: list[str] = Field(default_factory=list)
    """Requests the lesson applies to, in other words than the one it was learned from (the LLM distiller writes
    them): each is a retrieval key of its own (:meth:`retrieval_keys`). At most :data:`MAX_PHRASINGS`, the first
    ones kept."""
    scope: Scope = Field(default_factory=Scope)
    provenance: Provenance = Field(default_factory=Provenance)

    support: int = Field(default=1, ge=0)
    times_retrieved: int = Field(default=0, ge=0)
    helpful: int = Field(default=0, ge=0)
    harmful: int = Field(default=0, ge=0)
    utility: float = Field(default=0.0, allow_inf_nan=False)

    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    last_used_at: datetime | None = None
    status: ExperienceStatus = ExperienceStatus.ACTIVE

    supersedes: list[str] = Field(default_factory=list)
    superseded_by: str | None = None
    restored_at: datetime | None = None
    """When a person restored it (``restore``): refinement never retires it again, by merge, contradiction or cap."""
    quarantine_reason: str | None = None
    """Why screening quarantined it (injection families found); a person releases it with ``expscale quarantine``."""
    visibility: Visibility = Visibility.PRIVATE
    """Private unless shared: a record says who else may read it, and one that does not say (written before 0.4)
    reaches no one new. Lessons from trusted sources are shared at once; others by corroboration or review."""
    published_to: list[str] = Field(default_factory=list)
    """Scope keys (:meth:`Scope.key`) of other scopes that read it too: agent A publishing to agent B, not C."""
    revision: str = ""
    """Set by the store at every write (a fresh token): what a conditional write (``write_if``) compares, so that a
    writer whose copy is out of date writes nothing. Empty for a record not written yet, or written before 0.3."""

    def superseded_by_id(self, replacement_id: str, at: datetime) -> Experience:
        """A copy retired in favour of ``replacement_id`` (kept, restorable), as of ``at``."""
        return self.model_copy(
            update={"status": ExperienceStatus.SUPERSEDED, "superseded_by": replacement_id, "updated_at": at}
        )

    @property
    def audience(self) -> tuple[Scope, Visibility, tuple[str, ...]]:
        """Who reads it: records with different audiences are never merged into one (that would carry one
        scope's private text to another's readers)."""
        return self.scope, self.visibility, tuple(sorted(self.published_to))

    @field_validator("phrasings")
    @classmethod
    def _phrasings(cls, value: list[str]) -> list[str]:
        # Repaired, never refused: a record with one phrasing too many keeps its lesson.
        return [p for p in dict.fromkeys(" ".join(x.split()) for x in value) if p][:MAX_PHRASINGS]

    def embedding_text(self) -> str:
        """The text that is embedded: when to use it first, then the lesson itself."""
        if self.applicability:
            return f"{self.applicability}\n{self.content}"
        return self.content

    def situation(self) -> str:
        """When it applies, as one text: its applicability, and the phrasings it does not list already (what the
        screens read beside the content)."""
        listed = {p.strip() for p in self.applicability.split(PHRASING_SEPARATOR)}
        extra = [p for p in self.phrasings if p not in listed]
        return PHRASING_SEPARATOR.join(x for x in [self.applicability, *extra] if x)

    def retrieval_keys(self) -> list[str]:
        """The texts a search finds it by, best key wins: :meth:`embedding_text` first (its own vector), then each
        of its :attr:`phrasings` (else its applicability, the request a verbatim lesson was learned from), so a
        request worded like any one of them finds it, not only one worded like their blend with the lesson.

        Example:
            >>> rule = Experience(kind="strategy", content="Use ISO dates.", phrasings=["invoice date", "due date"])
            >>> rule.retrieval_keys()
            ['Use ISO dates.', 'invoice date', 'due date']
        """
        extra = self.phrasings or ([self.applicability.strip()] if self.applicability.strip() else [])
        return [self.embedding_text(), *extra]


class ScoredExperience(BaseModel):
    """A retrieved experience with its raw similarity and its blended rank score."""

    model_config = ConfigDict(frozen=True)

    experience: Experience
    score: float
    similarity: float
