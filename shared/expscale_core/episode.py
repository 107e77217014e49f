"""Episodes: one top-level run of the user's application, as it was captured."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from expscale_core.capture.storable import storable_text
from expscale_core.scope import Scope

__all__ = [
    "Episode",
    "EpisodeDraft",
    "EpisodeStatus",
    "ErrorStep",
    "LLMStep",
    "Message",
    "ObservationStep",
    "Outcome",
    "RetrievalStep",
    "Step",
    "ToolStep",
    "utcnow",
]


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _repaired_id(value: str) -> str:
    # Repaired where the episode (or capture's draft of it) is made, not when it is written: the id record()
    # returns must be the id stored.
    return value if value.isascii() else storable_text(value)


class EpisodeStatus(str, Enum):
    PENDING = "pending"
    DISTILLED = "distilled"
    FAILED = "failed"


class Message(BaseModel):
    """One chat message as the model saw it."""

    model_config = ConfigDict(extra="forbid")

    role: str
    content: str


class _StepBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class LLMStep(_StepBase):
    """A chat-model or completion call: the prompt, the answer, and reasoning when exposed."""

    type: Literal["llm"] = "llm"
    model: str | None = None
    messages: list[Message] = Field(default_factory=list)
    response: str = ""
    reasoning: str | None = None


class ToolStep(_StepBase):
    """A tool call with its input and its output or error."""

    type: Literal["tool"] = "tool"
    tool: str
    input: Any = None
    output: Any = None
    error: str | None = None


class RetrievalStep(_StepBase):
    """A retriever call and the texts it returned."""

    type: Literal["retrieval"] = "retrieval"
    query: str
    documents: list[str] = Field(default_factory=list)


class ErrorStep(_StepBase):
    """An exception raised anywhere in the run."""

    type: Literal["error"] = "error"
    error_type: str
    message: str


class ObservationStep(_StepBase):
    """Anything else worth keeping: an intermediate result, a note, an environment signal."""

    type: Literal["observation"] = "observation"
    text: str


Step = Annotated[
    LLMStep | ToolStep | RetrievalStep | ErrorStep | ObservationStep,
    Field(discriminator="type"),
]


class Outcome(BaseModel):
    """What the user or the environment said about the episode's result.

    ``score`` is in [-1, 1]: above 0 the result helped, below 0 it was wrong or harmful.
    ``correction`` is the right answer or fix when the user supplied one.
    """

    model_config = ConfigDict(extra="forbid")

    score: float = Field(ge=-1.0, le=1.0)
    comment: str | None = None
    correction: str | None = None
    at: datetime = Field(default_factory=utcnow)
    source: str | None = Field(default=None, max_length=500)
    """Who gave it: a user, the application, a reviewer. None: the episode's scope stands for the source."""
    trusted: bool = False
    """Given by a trusted source (a test that passed, a tool that confirmed the result, a reviewer): what it
    teaches is shared at once instead of waiting for corroboration."""

    @property
    def success(self) -> bool:
        return self.score > 0


class Episode(BaseModel):
    """One top-level run: the input, the ordered steps, the output and its outcome.

    Example:
        >>> ep = Episode(input="2+2?", output="4")
        >>> ep.status.value
        'pending'
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: str(uuid.uuid4()))
    scope: Scope = Field(default_factory=Scope)
    input: str
    output: str | None = None
    steps: list[Step] = Field(default_factory=list)
    outcome: Outcome | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    started_at: datetime = Field(default_factory=utcnow)
    ended_at: datetime | None = None
    status: EpisodeStatus = EpisodeStatus.PENDING
    error: str | None = None

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("episode id must be a non-empty string, e.g. the run id of the top-level run")
        return _repaired_id(value)

    @property
    def errors(self) -> list[ErrorStep]:
        return [s for s in self.steps if isinstance(s, ErrorStep)]


@dataclass(slots=True, kw_only=True, repr=False)
class EpisodeDraft:
    """A finished run's fields as capture collected them; the queue's writer validates it into an :class:`Episode`
    just before storing it.

    Capture runs on the caller's thread, where validating the episode cost as much as the rest of capture together.
    A draft holds what the recorder built itself (texts, step models, a metadata dict), so it validates; one that
    does not becomes a dead letter with its error, like any episode the writer cannot store.

    Example:
        >>> draft = EpisodeDraft(id="r1", scope=Scope(), input="2+2?", output="4", steps=[], metadata={},
        ...                      started_at=utcnow(), ended_at=utcnow())
        >>> draft.build().output
        '4'
    """

    id: str
    scope: Scope
    input: str
    output: str | None
    steps: list[Step]
    metadata: dict[str, Any]
    started_at: datetime
    ended_at: datetime

    def __post_init__(self) -> None:
        self.id = _repaired_id(self.id)

    def build(self) -> Episode:
        return Episode(
            id=self.id,
            scope=self.scope,
            input=self.input,
            output=self.output,
            steps=self.steps,
            metadata=self.metadata,
            started_at=self.started_at,
            ended_at=self.ended_at,
        )

    def __repr__(self) -> str:
        return f"EpisodeDraft(id={self.id!r}, input={self.input[:60]!r}, steps={len(self.steps)})"
