"""Redaction: one function on the engine that every path applies (capture by any adapter, feedback,
imports). Optional built-in patterns for API keys, email addresses and card numbers."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Literal

__all__ = ["BUILTIN_PATTERNS", "BuiltinPattern", "build_redactor", "redact_text"]

BuiltinPattern = Literal["api_keys", "emails", "cards"]
_KEYS = re.compile(
    r"\b(sk-(proj-|ant-)?[A-Za-z0-9_\-]{16,}|AKIA[0-9A-Z]{16}|gh[pousr]_[A-Za-z0-9]{30,}|xox[abpr]-[A-Za-z0-9-]{10,}|"
    r"AIza[0-9A-Za-z_\-]{35})\b|(?i:\bbearer\s+[A-Za-z0-9._~+/\-]{20,}=*)"
)
_EMAILS = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")
_CARDS = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
BUILTIN_PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {
    "api_keys": (_KEYS, "[REDACTED_KEY]"),
    "emails": (_EMAILS, "[REDACTED_EMAIL]"),
    "cards": (_CARDS, "[REDACTED_CARD]"),
}


def _luhn(digits: str) -> bool:
    total, parity = 0, len(digits) % 2
    for i, ch in enumerate(digits):
        d = int(ch)
        if i % 2 == parity:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_or_not(match: re.Match[str]) -> str:
    return "[REDACTED_CARD]" if _luhn(re.sub(r"\D", "", match.group())) else match.group()


def redact_text(text: str, patterns: Sequence[str]) -> str:
    """``text`` with the built-in ``patterns`` replaced by placeholders (cards only when Luhn-valid).

    Example:
        >>> redact_text("key sk-abcdefghijklmnop1234 mail bob@example.com", ["api_keys", "emails"])
        'key [REDACTED_KEY] mail [REDACTED_EMAIL]'
    """
    for name in patterns:
        pattern, placeholder = BUILTIN_PATTERNS[name]
        if name == "cards":
            text = pattern.sub(_card_or_not, text)
        else:
            text = pattern.sub(placeholder, text)
    return text


def build_redactor(
    builtin: Sequence[str] = (), custom: Callable[[str], str] | None = None
) -> Callable[[str], str] | None:
    """One redactor from the built-in pattern names and/or your own function (applied after them)."""
    unknown = set(builtin) - set(BUILTIN_PATTERNS)
    if unknown:
        raise ValueError(
            f"unknown built-in redaction pattern(s) {sorted(unknown)}; choose from {sorted(BUILTIN_PATTERNS)} "
            "(EXPSCALE_REDACT__BUILTIN)"
        )
    names = list(builtin)
    if not names and custom is None:
        return None

    def redact(text: str) -> str:
        out = redact_text(text, names) if names else text
        return custom(out) if custom is not None else out

    return redact
