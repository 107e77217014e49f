"""Redaction: one function on the engine that every path applies (capture by any adapter, feedback,
imports). Optional built-in patterns for API keys, email addresses and card numbers."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel

from expscale_core.episode import Episode

__all__ = ["BUILTIN_PATTERNS", "BuiltinPattern", "Redactor", "build_redactor", "redact_episode", "redact_text"]

BuiltinPattern = Literal["api_keys", "emails", "cards"]
_KEY = "[REDACTED_KEY]"

# Credentials by their published formats (the shapes secret scanners such as detect-secrets and gitleaks look
# for), then by where they sit (a URL's password, a connection string's key, an assignment to a secret-named
# variable). Each names what it is for; tests/test_secret_corpus.py measures them on 25 formats.
_SECRET_TOKENS = re.compile(
    "|".join(
        [
            r"-----BEGIN[A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END[A-Z ]*PRIVATE KEY-----|\Z)",  # PEM private keys
            r"\b(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16}\b",  # AWS access key ids
            r"\bsk-(?:proj-|ant-(?:api|admin)\d\d-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}",  # OpenAI, Anthropic
            r"\b(?:sk|rk|pk)_(?:live|test)_[A-Za-z0-9]{16,}\b",  # Stripe secret, restricted and publishable keys
            r"\bgh[pousr]_[A-Za-z0-9]{30,}\b|\bgithub_pat_[A-Za-z0-9_]{40,}\b",  # GitHub tokens
            r"\bglpat-[A-Za-z0-9_\-]{20,}\b",  # GitLab personal access tokens
            r"\bxox[abposr]-[A-Za-z0-9-]{10,}",  # Slack tokens
            r"https://hooks\.slack\.com/services/[A-Za-z0-9/_\-]+",  # Slack incoming webhooks
            r"\bAIza[0-9A-Za-z_\-]{35}\b",  # Google API keys
            r"\bya29\.[0-9A-Za-z_\-]{20,}",  # Google OAuth access tokens
            r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWTs
            r"\bSG\.[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{16,}",  # SendGrid
            r"\bSK[0-9a-f]{32}\b",  # Twilio API keys
            r"\bnpm_[A-Za-z0-9]{36}\b",  # npm tokens
            r"\bpypi-[A-Za-z0-9_\-]{50,}",  # PyPI API tokens
            r"\bhf_[A-Za-z0-9]{30,}\b",  # Hugging Face tokens
            r"\bshp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}\b",  # Shopify tokens
            r"\bdop_v1_[a-f0-9]{64}\b",  # DigitalOcean tokens
            r"\b\d{8,10}:AA[A-Za-z0-9_\-]{33}\b",  # Telegram bot tokens
            r"\b[MN][A-Za-z\d]{23,25}\.[\w-]{6}\.[\w-]{27,}",  # Discord bot tokens
            r"(?i:\bbearer\s+[A-Za-z0-9._~+/\-]{20,}=*)",  # HTTP bearer tokens
        ]
    )
)
# What precedes the secret is kept (a URL's user, a setting's name), so the text still reads.
_SECRET_SLOTS = re.compile(
    r"(?P<keep>\b[a-z][a-z0-9+.\-]*://[^\s:/@]+:)[^\s@/]+(?=@)"  # a URL's password: scheme://user:PASSWORD@
    r"|(?P<keep2>(?i:\b(?:password|passwd|pwd|accountkey|sharedaccesskey|secret|client_secret|api_?key|access_?key"
    r"|secret_?key|auth_?token|access_?token|private_?key|aws_secret_access_key)\b)[\"']?\s*[:=]\s*[\"']?)"
    r"[^\s\"';,]{6,}"  # password=..., "api_key": "...", AccountKey=...;
)


def _redact_secrets(text: str) -> str:
    text = _SECRET_TOKENS.sub(_KEY, text)
    return _SECRET_SLOTS.sub(lambda m: (m.group("keep") or m.group("keep2")) + _KEY, text)


_EMAILS = re.compile(r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}\b")
_CARDS = re.compile(r"\b(?:\d[ -]?){12,18}\d\b")
BUILTIN_PATTERNS: dict[str, tuple[re.Pattern[str], str]] = {
    "api_keys": (_SECRET_TOKENS, _KEY),
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
        elif name == "api_keys":
            text = _redact_secrets(text)
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


Redactor = Callable[[str], str]


def redact_episode(episode: Episode, redact: Redactor) -> Episode:
    """Apply ``redact`` to every string in the episode: input, output, steps, outcome and metadata, the keys
    of captured mappings included. Only the model's own bookkeeping is left alone (ids, step types, scope)."""
    redacted: Episode = _redact_model(episode, redact)
    return redacted


_BOOKKEEPING = frozenset({"id", "type", "scope"})


def _redact_model(model: Any, redact: Redactor) -> Any:
    update = {
        name: _redact_value(getattr(model, name), redact)
        for name in type(model).model_fields
        if name not in _BOOKKEEPING
    }
    return model.model_copy(update=update)


def _redact_value(value: Any, redact: Redactor) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, BaseModel):
        return _redact_model(value, redact)
    if isinstance(value, list):
        return [_redact_value(v, redact) for v in value]
    if isinstance(value, dict):  # a key can carry a secret as well as a value ({"sk-...": "prod"})
        return {(redact(k) if isinstance(k, str) else k): _redact_value(v, redact) for k, v in value.items()}
    return value
