"""The distiller port and the decisions it returns."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Protocol, runtime_checkable

from expscale_core.episode import Episode
from expscale_core.experience import Experience, ExperienceKind

__all__ = ["Action", "Decision", "Distiller"]


class Action(str, Enum):
    ADD = "ADD"
    """Store a new experience."""
    UPDATE = "UPDATE"
    """Rewrite an existing experience with the new content; it keeps its id and gains support."""
    SUPERSEDE = "SUPERSEDE"
    """Store a new experience that replaces an existing one; the old one stays, marked superseded."""
    NOOP = "NOOP"
    """Nothing new; with a target, the episode is more support for that experience."""


@dataclass(frozen=True)
class Decision:
    """One distilled candidate and what to do with it."""

    action: Action
    target_id: str | None = None
    kind: ExperienceKind | None = None
    content: str | None = None
    applicability: str = ""
    phrasings: tuple[str, ...] = ()
    """Other wordings of requests it applies to (:attr:`Experience.phrasings`); an UPDATE without any keeps the
    target's."""
    repaired: tuple[str, ...] = ()
    """What was fixed in the distiller's output to keep this lesson (recorded in provenance)."""
    verbatim: bool = False
    """The content is the episode's own verified text, the same whoever distills it. A new such lesson gets an
    id derived from its content, so engines that learn it at the same moment write one record. (A model's
    wording varies from call to call, so its lessons keep ids derived from the episode: a retried episode then
    rewrites its lesson instead of adding a second.)"""

    def as_add(self, note: str) -> Decision:
        """This lesson as a record of its own instead of a change to its target, with ``note`` saying why."""
        return replace(self, action=Action.ADD, target_id=None, repaired=(*self.repaired, note), verbatim=False)

    def __post_init__(self) -> None:
        if self.action in (Action.UPDATE, Action.SUPERSEDE) and not self.target_id:
            raise ValueError(f"{self.action.value} needs the id of the existing experience it changes")
        if self.action in (Action.ADD, Action.UPDATE, Action.SUPERSEDE) and not (self.content and self.kind):
            raise ValueError(f"{self.action.value} needs a kind and non-empty content")


@runtime_checkable
class Distiller(Protocol):
    """Turns one finished episode into decisions about the store.

    Contract: ``similar`` are existing active experiences in the episode's exact scope with their
    similarity to the episode, best first; decisions may only target their ids. ``served`` are the ids
    among them that were shown to the episode while it ran (so a distiller can tell that a served
    lesson misled it). Raise
    :class:`~expscale_core.errors.LLMError` for failures worth retrying later and
    :class:`~expscale_core.errors.LLMOutputError` for output that cannot be used.
    """

    @property
    def name(self) -> str:
        """Recorded in each experience's provenance, e.g. ``llm:gpt-4o-mini`` or ``rules``."""
        ...

    @property
    def prompt_version(self) -> str | None: ...

    def distill(
        self,
        episode: Episode,
        similar: Sequence[tuple[Experience, float]],
        *,
        served: Collection[str] = (),
    ) -> list[Decision]: ...
