"""The ``conventions`` scenario: house rules a team teaches its assistant, tested on *different* requests.

Each family is one rule of the kind teams correct an assistant on (a date format, an identifier scheme, a routing
threshold, a command). Two teaching requests are answered, checked and corrected; then four other requests of the
same family test whether what was learned transfers. Tests are not learned from, so every test measures what the
two teaching episodes left behind. Checks are deterministic patterns on the answer.

Two correction styles: ``rule`` (the user states the rule, then the answer) and ``answer`` (the user gives only the
right answer; nothing in it says what the rule is: only generalising from the instances can find it).
The families were written for this project; none comes from a dataset.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from expscale_core.eval.scenarios import Task

__all__ = ["FAMILIES", "Family", "Style", "conventions", "held_out_tasks", "teaching_tasks"]

Style = Literal["rule", "answer"]


@dataclass(frozen=True)
class Family:
    name: str
    rule: str
    teach: tuple[tuple[str, str], ...]
    """(request, right answer)"""
    test: tuple[tuple[str, str, str | None], ...]
    """(request, pattern a right answer matches, pattern a right answer must not match)"""


def _lit(text: str) -> str:
    return re.escape(text)


FAMILIES: tuple[Family, ...] = (
    Family(
        "iso-dates",
        "We write every date as YYYY-MM-DD.",
        (
            ("Write the date March 5, 2025 for the release note.", "2025-03-05"),
            ("What date goes on the invoice for 9 January 2027?", "2027-01-09"),
        ),
        (
            ("Put the date 14 July 2026 in the changelog.", _lit("2026-07-14"), None),
            ("Which date do I write for the 1st of February 2025?", _lit("2025-02-01"), None),
            ("Log entry date for November 30, 2026?", _lit("2026-11-30"), None),
            ("Write the deadline, August 8, 2028, for the plan.", _lit("2028-08-08"), None),
        ),
    ),
    Family(
        "incident-ids",
        "Incident tickets are named INC- followed by the incident number padded to 5 digits.",
        (("What is the ticket name for incident 42?", "INC-00042"), ("Name the ticket for incident 315.", "INC-00315")),
        (
            ("What is the ticket name for incident 7?", _lit("INC-00007"), None),
            ("Ticket name for incident 1234?", _lit("INC-01234"), None),
            ("Name the ticket for incident 88.", _lit("INC-00088"), None),
            ("Which ticket name does incident 5 get?", _lit("INC-00005"), None),
        ),
    ),
    Family(
        "refund-queues",
        "Refunds under 100 dollars go to the support queue; refunds of 100 dollars or more go to the finance queue.",
        (("Which queue handles a $40 refund?", "support"), ("Which queue handles a $250 refund?", "finance")),
        (
            ("Which queue handles a $99 refund?", r"(?i)\bsupport\b", r"(?i)\bfinance\b"),
            ("Where does a $3,000 refund go?", r"(?i)\bfinance\b", r"(?i)\bsupport\b"),
            ("Which queue gets a $12 refund?", r"(?i)\bsupport\b", r"(?i)\bfinance\b"),
            ("Route a $100 refund: which queue?", r"(?i)\bfinance\b", r"(?i)\bsupport\b"),
        ),
    ),
    Family(
        "deploy-command",
        "We deploy only with `make ship ENV=<environment>`, never with kubectl or scripts.",
        (
            ("How do I deploy to staging?", "make ship ENV=staging"),
            ("What command deploys to production?", "make ship ENV=production"),
        ),
        (
            ("How do I deploy to the qa environment?", r"make ship ENV=qa\b", None),
            ("What command deploys to dev?", r"make ship ENV=dev\b", None),
            ("Deploy the demo environment: what do I run?", r"make ship ENV=demo\b", None),
            ("How do I ship to sandbox?", r"make ship ENV=sandbox\b", None),
        ),
    ),
    Family(
        "branch-names",
        "Branch names are feature/<ticket number>-<title in lowercase words joined by hyphens>.",
        (
            ("Branch name for ticket 12, 'Add login page'?", "feature/12-add-login-page"),
            ("Branch name for ticket 87, 'Fix cart total'?", "feature/87-fix-cart-total"),
        ),
        (
            ("Branch name for ticket 5, 'Update footer links'?", _lit("feature/5-update-footer-links"), None),
            ("Branch name for ticket 230, 'Remove old API'?", _lit("feature/230-remove-old-api"), None),
            ("Branch name for ticket 41, 'Add dark mode'?", _lit("feature/41-add-dark-mode"), None),
            ("Branch name for ticket 9, 'Speed up search'?", _lit("feature/9-speed-up-search"), None),
        ),
    ),
    Family(
        "prices",
        "Prices are written with two decimals followed by the currency code, like 12.50 EUR.",
        (("How do we write a price of 7 euros?", "7.00 EUR"), ("Write 19.9 dollars as a price.", "19.90 USD")),
        (
            ("Write a price of 3 euros.", r"\b3\.00 EUR\b", None),
            ("How do we write 45.5 dollars?", r"\b45\.50 USD\b", None),
            ("Write the price 120 pounds.", r"\b120\.00 GBP\b", None),
            ("Price for half a euro?", r"\b0\.50 EUR\b", None),
        ),
    ),
    Family(
        "durations",
        "Durations are given in minutes only, like 90 minutes.",
        (("How long is a 2 hour onboarding session?", "120 minutes"), ("Length of a 1.5 hour workshop?", "90 minutes")),
        (
            ("How long is a 3 hour training?", r"\b180\s*min", None),
            ("Length of a half-hour call?", r"\b30\s*min", None),
            ("How long is a 2.5 hour review?", r"\b150\s*min", None),
            ("Length of a quarter-hour standup?", r"\b15\s*min", None),
        ),
    ),
    Family(
        "priority-labels",
        "Label an issue P1 when a service is down, P2 when it is slow or degraded, P3 when it is cosmetic.",
        (
            ("Label this issue: checkout is down for all users.", "P1"),
            ("Label this issue: a typo on the About page.", "P3"),
        ),
        (
            ("Label this issue: search takes 20 seconds to load.", r"\bP2\b", r"\bP[13]\b"),
            ("Label this issue: login is completely unavailable.", r"\bP1\b", r"\bP[23]\b"),
            ("Label this issue: the logo is slightly blurry.", r"\bP3\b", r"\bP[12]\b"),
            ("Label this issue: the payment API is down.", r"\bP1\b", r"\bP[23]\b"),
        ),
    ),
    Family(
        "report-files",
        "Monthly reports are named report_<year>_<two-digit month>.csv.",
        (
            ("File name for the March 2025 report?", "report_2025_03.csv"),
            ("File name for the November 2024 report?", "report_2024_11.csv"),
        ),
        (
            ("File name for the July 2026 report?", _lit("report_2026_07.csv"), None),
            ("File name for the January 2025 report?", _lit("report_2025_01.csv"), None),
            ("File name for the December 2023 report?", _lit("report_2023_12.csv"), None),
            ("File name for the September 2027 report?", _lit("report_2027_09.csv"), None),
        ),
    ),
    Family(
        "directory-names",
        "In the directory, people are written as LASTNAME, Firstname, with the last name in capitals.",
        (
            ("Format the name Ada Lovelace for the directory.", "LOVELACE, Ada"),
            ("Format Alan Turing for the directory.", "TURING, Alan"),
        ),
        (
            ("Format Grace Hopper for the directory.", r"HOPPER,\s*Grace", None),
            ("Format the name Linus Torvalds for the directory.", r"TORVALDS,\s*Linus", None),
            ("Format Margaret Hamilton for the directory.", r"HAMILTON,\s*Margaret", None),
            ("Format the name Tim Cook for the directory.", r"COOK,\s*Tim", None),
        ),
    ),
    Family(
        "release-tags",
        "Release tags are release-v<major>.<minor>.<patch>, with missing parts written as 0.",
        (("Tag for version 1.4?", "release-v1.4.0"), ("Tag for version 2.0.3?", "release-v2.0.3")),
        (
            ("Tag for version 3.1?", _lit("release-v3.1.0"), None),
            ("Tag for version 0.9.2?", _lit("release-v0.9.2"), None),
            ("Tag for version 5?", _lit("release-v5.0.0"), None),
            ("Tag for version 2.2?", _lit("release-v2.2.0"), None),
        ),
    ),
    Family(
        "expense-approval",
        "Expenses up to 500 dollars are approved by the team lead; anything above 500 dollars needs the CFO.",
        (("Who approves a $120 expense?", "the team lead"), ("Who approves a $900 expense?", "the CFO")),
        (
            ("Who approves a $500 expense?", r"(?i)team lead", r"\bCFO\b"),
            ("Who approves a $501 expense?", r"\bCFO\b", r"(?i)team lead"),
            ("Who approves a $60 expense?", r"(?i)team lead", r"\bCFO\b"),
            ("Who approves a $2,400 expense?", r"\bCFO\b", r"(?i)team lead"),
        ),
    ),
)


def teaching_tasks(families: Sequence[Family], style: Style) -> list[Task]:
    """The teaching rounds of ``families``, in order; each correction follows ``style``."""
    return [
        Task(q, (a,), f.name, "teach", solution=f"{f.rule} So: {a}" if style == "rule" else a, expect=_lit(a))
        for f in families
        for q, a in f.teach
    ]


def held_out_tasks(families: Sequence[Family]) -> list[Task]:
    """The test rounds of ``families``, in order: measured, never learned from."""
    return [
        Task(q, (), f.name, "test", expect=expect, reject=reject, learn=False)
        for f in families
        for q, expect, reject in f.test
    ]


def conventions(*, style: Style, seed: int, limit: int | None = None) -> list[Task]:
    """All teaching rounds (shuffled), then all tests (shuffled): every test comes after both teachings of its
    family. Corrections follow ``style``."""
    rng = random.Random(seed)
    families = list(FAMILIES[:limit] if limit else FAMILIES)
    teach, test = teaching_tasks(families, style), held_out_tasks(families)
    rng.shuffle(teach)
    rng.shuffle(test)
    return teach + test
