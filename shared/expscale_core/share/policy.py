"""The share policy, and how a distilled plan takes its episode's trust: sources, visibility, untouchable text."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from expscale_core.distill.apply import StorePlan
from expscale_core.distill.base import Action, Decision
from expscale_core.episode import Episode
from expscale_core.experience import Experience, Visibility
from expscale_core.settings import ShareSettings

__all__ = ["SharePolicy", "attribute", "confirmer", "keep_others_text", "reaches_others", "source_of", "trusted"]


@dataclass(frozen=True)
class SharePolicy:
    corroborations: int = 2
    corroboration_threshold: float = 0.9
    trusted_visibility: Visibility = Visibility.SHARED
    publish_to: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: ShareSettings) -> SharePolicy:
        return cls(
            corroborations=settings.corroborations,
            corroboration_threshold=settings.corroboration_threshold,
            trusted_visibility=Visibility(settings.trusted_visibility),
            publish_to=tuple(settings.publish_to),
        )

    def shared(self, exp: Experience) -> Experience:
        """``exp`` as a trusted or corroborated lesson: with the configured reach."""
        published = list(dict.fromkeys([*exp.published_to, *self.publish_to]))
        return exp.model_copy(update={"visibility": self.trusted_visibility, "published_to": published})


def source_of(episode: Episode) -> str:
    """Who taught ``episode``: the source its feedback named, else the user its adapter captured (LangChain's
    ``metadata={"user_id": ...}``), else its scope (one user repeating himself, in his own scope, is one source)."""
    named = episode.outcome.source if episode.outcome is not None else None
    user = episode.metadata.get("user")
    return named or (f"user:{user}" if isinstance(user, str) and user else f"scope:{episode.scope.key()}")


def trusted(episode: Episode) -> bool:
    return episode.outcome is not None and episode.outcome.trusted


def reaches_others(exp: Experience) -> bool:
    """Read beyond the scope that wrote it (shared or published)."""
    return exp.visibility is Visibility.SHARED or bool(exp.published_to)


def keep_others_text(decisions: Sequence[Decision], existing: Sequence[Experience], *, trusted: bool) -> list[Decision]:
    """An untrusted episode may not rewrite or retire a lesson other scopes read: its UPDATE or SUPERSEDE of one
    becomes a lesson of its own (private, beside the untouched original). Otherwise one hostile correction would
    replace a shared lesson for everyone."""
    if trusted:
        return list(decisions)
    guarded = {e.id for e in existing if reaches_others(e)}
    out = []
    for d in decisions:
        if d.action in (Action.UPDATE, Action.SUPERSEDE) and d.target_id in guarded and d.content and d.kind:
            d = d.as_add(f"{d.action.value} of a shared lesson by an untrusted source -> ADD (private)")
        out.append(d)
    return out


def confirmer(episode: Episode, policy: SharePolicy) -> Callable[[Experience], Experience]:
    """What ``episode`` does to a lesson it taught or confirmed: counts its source, and shares the lesson when
    the source is trusted. Fresh lessons (not yet in the store) start private unless trusted."""
    source, sure = source_of(episode), trusted(episode)

    def confirm(exp: Experience, fresh: bool = False) -> Experience:
        if episode.id not in exp.provenance.source_episode_ids:
            return exp
        sources = [source] if fresh else list(dict.fromkeys([*exp.provenance.sources, source]))
        update: dict[str, object] = {
            "provenance": exp.provenance.model_copy(
                update={"sources": sources, "trusted": sure or (not fresh and exp.provenance.trusted)}
            )
        }
        if fresh:
            update |= {"visibility": Visibility.PRIVATE, "published_to": []}
        stamped = exp.model_copy(update=update)
        return policy.shared(stamped) if sure else stamped

    return confirm


def attribute(plan: StorePlan, existing: Sequence[Experience], confirm: Callable[..., Experience]) -> None:
    """Stamp ``plan`` with its episode's source and trust (:func:`confirmer`)."""
    known = {e.id for e in existing}
    plan.new = [confirm(e, e.id not in known) for e in plan.new]
    plan.changed = [confirm(e) for e in plan.changed]
