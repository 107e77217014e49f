"""Scopes: who an episode or experience belongs to, and what a read may see."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

__all__ = ["Scope", "ScopeOption"]

_SCOPE_FIELDS = ("namespace", "tenant", "agent", "user")


class Scope(BaseModel):
    """Where an experience lives and who may read it.

    A write goes to exactly this scope. A read with a scope sees every record whose fields
    equal each field the read scope sets: ``Scope(namespace="acme")`` sees all agents of
    ``acme``; ``Scope(namespace="acme", agent="triage")`` sees only that agent's records.
    The store applies these conditions inside the query, never after it.

    Example:
        >>> Scope(namespace="acme", agent="triage").key()
        'acme/tenant=-/agent=triage/user=-'
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    namespace: str = Field(default="default", min_length=1)
    tenant: str | None = None
    agent: str | None = None
    user: str | None = None

    def conditions(self) -> dict[str, str]:
        """The field/value pairs a read with this scope must match."""
        return {name: value for name in _SCOPE_FIELDS if (value := getattr(self, name)) is not None}

    def key(self) -> str:
        """A stable, human-readable string for logs and the episode table."""
        parts = [self.namespace] + [f"{n}={getattr(self, n) or '-'}" for n in _SCOPE_FIELDS[1:]]
        return "/".join(parts)

    def contains(self, other: Scope) -> bool:
        """True when a read with this scope sees records written to ``other``."""
        return all(getattr(other, name) == value for name, value in self.conditions().items())

    def ancestors(self) -> list[Scope]:
        """Every scope whose reads see this one's records (itself included): the same namespace with any of
        this scope's other fields left unset. What a record published to any of them reaches.

        Example:
            >>> [s.key() for s in Scope(namespace="acme", agent="b").ancestors()]
            ['acme/tenant=-/agent=b/user=-', 'acme/tenant=-/agent=-/user=-']
        """
        fields = [name for name in _SCOPE_FIELDS[1:] if getattr(self, name) is not None]
        out = []
        for mask in range(2 ** len(fields) - 1, -1, -1):
            kept = {name: getattr(self, name) for i, name in enumerate(fields) if mask >> (len(fields) - 1 - i) & 1}
            out.append(Scope(namespace=self.namespace, **kept))
        return out

    @classmethod
    def parse(cls, text: str) -> Scope:
        """A scope written as ``namespace[/field=value...]``, as :meth:`key` writes it (``-`` for unset).

        Example:
            >>> Scope.parse("acme/agent=billing") == Scope(namespace="acme", agent="billing")
            True
        """
        namespace, *parts = text.strip().split("/")
        fields: dict[str, str] = {}
        for part in parts:
            name, sep, value = part.partition("=")
            if not sep or name not in _SCOPE_FIELDS[1:]:
                raise ValueError(
                    f"scope {text!r}: {part!r} is not field=value with field one of {', '.join(_SCOPE_FIELDS[1:])}; "
                    "write a scope as namespace/field=value, e.g. acme/agent=billing"
                )
            if value != "-":
                fields[name] = value
        if not namespace:
            raise ValueError(f"scope {text!r} has no namespace; write it as namespace/field=value, e.g. acme/agent=b")
        return cls(namespace=namespace, **fields)

    @classmethod
    def coerce(cls, value: Scope | dict[str, Any] | str | None) -> Scope:
        """Accept a Scope, a dict of fields, a namespace string or None (the default scope)."""
        if value is None:
            return cls()
        if isinstance(value, Scope):
            return value
        if isinstance(value, str):
            return cls(namespace=value)
        if isinstance(value, dict):
            return cls.model_validate(value)
        raise TypeError(
            f"scope must be a Scope, a dict of its fields or a namespace string, not {type(value).__name__}"
        )


ScopeOption = Annotated[Scope | None, BeforeValidator(lambda value: None if value is None else Scope.coerce(value))]
"""A model field that takes what :meth:`Scope.coerce` takes (a Scope, a dict of its fields, a namespace string);
None leaves it unset. Every adapter's ``scope=`` uses it."""
