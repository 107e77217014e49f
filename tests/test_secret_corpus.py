"""The built-in ``api_keys`` redaction on 25 common credential formats, and on ordinary text that must survive.

Values are assembled at run time from random characters of the right alphabet, so no real-looking secret sits in
the repository (and secret scanners have nothing to flag here)."""

from __future__ import annotations

import random
import string

from expscale_core.capture.redact import redact_text

_R = random.Random(15)
_AN = string.ascii_letters + string.digits


def _s(n: int, alphabet: str = _AN) -> str:
    return "".join(_R.choice(alphabet) for _ in range(n))


_HEX = "0123456789abcdef"
_B64 = _AN + "+/"
_PEM_BODY = "\n".join(_s(64, _B64) for _ in range(5))

# (what it is, the text around it, the secret that must disappear)
CORPUS: list[tuple[str, str, str]] = [
    ("AWS access key id", "AWS_ACCESS_KEY_ID={}", "AKIA" + _s(16, string.ascii_uppercase + string.digits)),
    ("AWS secret access key", "aws_secret_access_key = {}", _s(40, _B64)),
    ("GitHub classic token", "token: {}", "ghp_" + _s(36)),
    ("GitHub fine-grained token", "use {} for the API", "github_pat_" + _s(22) + "_" + _s(59)),
    ("GitLab token", "PRIVATE-TOKEN {}", "glpat-" + _s(20)),
    ("Slack bot token", "SLACK_TOKEN {}", "xoxb-" + _s(11, string.digits) + "-" + _s(13, string.digits) + "-" + _s(24)),
    ("Slack webhook", "post to {}", "https://hooks.slack.com/services/T" + _s(8) + "/B" + _s(8) + "/" + _s(24)),
    ("Stripe secret key", "stripe key {}", "sk_live_" + _s(24)),
    ("Stripe restricted key", "restricted {}", "rk_live_" + _s(24)),
    ("OpenAI project key", "OPENAI_API_KEY {}", "sk-proj-" + _s(48)),
    ("Anthropic key", "x-api-key: {}", "sk-ant-api03-" + _s(93) + "AA"),
    ("Google API key", "maps key {}", "AIza" + _s(35)),
    ("JWT", "Cookie: session={}", "eyJ" + _s(20) + ".eyJ" + _s(40) + "." + _s(43)),
    (
        "PEM private key",
        "key file:\n{}\n",
        "-----BEGIN RSA PRIVATE KEY-----\n" + _PEM_BODY + "\n-----END RSA PRIVATE KEY-----",
    ),
    ("password in a URL", "DATABASE_URL=postgres://app:{}@db.internal:5432/prod", _s(18)),
    ("connection string key", "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={};", _s(86, _B64) + "=="),
    ("bearer token", "Authorization: Bearer {}", _s(40)),
    ("Twilio API key", "twilio {}", "SK" + _s(32, _HEX)),
    ("SendGrid key", "SENDGRID {}", "SG." + _s(22) + "." + _s(43)),
    ("npm token", "//registry.npmjs.org/:_authToken={}", "npm_" + _s(36)),
    ("PyPI token", "password = {}", "pypi-AgEIcHlwaS5vcmc" + _s(60)),
    ("Hugging Face token", "HF_TOKEN {}", "hf_" + _s(34)),
    ("Shopify token", "shop token {}", "shpat_" + _s(32, _HEX)),
    ("Telegram bot token", "bot {}", _s(10, string.digits) + ":AA" + _s(33)),
    ("password assignment", 'config = {{"password": "{}"}}', _s(14) + "!"),
]

ORDINARY = [
    "The password policy requires 12 characters and a number.",
    "Use scikit-learn (sk-learn) for the baseline.",
    "Commit 3f2a9c1e8b7d6a5f4e3d2c1b0a9f8e7d6c5b4a39 fixed it.",
    "Request id 123e4567-e89b-12d3-a456-426614174000 timed out.",
    "See https://docs.example.com/guide for the API key rotation steps.",
    "Set the token limit=4096 and retry.",
    "Our VPN uses 1194/udp; the bearer of this letter is Jane.",
    "Call 555-0100 between 9:00 and 17:00.",
]


def test_at_least_24_of_25_secret_formats_are_redacted() -> None:
    missed = []
    for name, template, secret in CORPUS:
        out = redact_text(template.format(secret), ["api_keys"])
        if secret in out or secret[: len(secret) // 2] in out:
            missed.append(name)
    assert len(CORPUS) == 25
    assert len(missed) <= 1, f"not redacted: {missed}"


def test_ordinary_text_is_left_alone() -> None:
    for text in ORDINARY:
        assert redact_text(text, ["api_keys"]) == text
