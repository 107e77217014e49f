"""Twelve realistic finished episodes, each with an unseen related request and what its lesson must carry.

Used by the ``real_llm`` tests and by ``benchmarks/real_llm_distill.py``. ``transfer`` lists alternatives:
the lesson retrieved for ``related`` must mention at least one of them (case-insensitive), which is the
point that makes it useful on the new request rather than the old one.
"""

from __future__ import annotations

from dataclasses import dataclass

from expscale_core import (
    Episode,
    EpisodeStatus,
    ErrorStep,
    ExperienceEngine,
    ExperienceStatus,
    LLMStep,
    Outcome,
    ToolStep,
)


@dataclass(frozen=True)
class Case:
    name: str
    episode: Episode
    related: str
    transfer: tuple[str, ...]


def _ep(input: str, output: str, outcome: Outcome, steps: list[object] | None = None) -> Episode:
    return Episode(input=input, output=output, outcome=outcome, steps=list(steps or []))  # type: ignore[arg-type]


CASES: list[Case] = [
    Case(
        "discount-math",
        _ep(
            "A jacket costs $80 after a 20% discount. What was the original price?",
            "The original price was $96 (80 + 20% of 80).",
            Outcome(score=-1, comment="wrong method", correction="$100: divide the sale price by (1 - 0.20)."),
        ),
        "A TV costs $300 after a 25% discount. What did it cost before the discount?",
        ("divide", "1 -", "1-", "(1 - "),
    ),
    Case(
        "currency-tool",
        _ep(
            "How much is 250 EUR in USD?",
            "250 EUR is about 270 USD.",
            Outcome(
                score=-1,
                comment="rates change daily; you had an exchange_rates tool and did not use it",
                correction="Call the exchange_rates tool for the current EUR/USD rate, then multiply.",
            ),
            [LLMStep(response="250 EUR is about 270 USD.")],
        ),
        "Convert 80 GBP to Japanese yen for me.",
        ("exchange_rates", "rates tool", "exchange rate", "tool"),
    ),
    Case(
        "tool-error-fix",
        _ep(
            "Show me the weather in Paris tomorrow.",
            "Tomorrow in Paris: 14°C, light rain.",
            Outcome(score=1),
            [
                ToolStep(
                    tool="weather", input={"city": "Paris"}, error="400: missing required field 'date' (YYYY-MM-DD)"
                ),
                ToolStep(tool="weather", input={"city": "Paris", "date": "2026-11-26"}, output="14C, light rain"),
            ],
        ),
        "What's the weather going to be in Berlin on Friday?",
        ("date", "yyyy-mm-dd"),
    ),
    Case(
        "board-summary-preference",
        _ep(
            "Summarize the Q3 sales report for the board.",
            "Q3 sales rose in all regions. EMEA grew fastest, driven by two enterprise deals, while APAC was flat "
            "because of currency effects. Churn fell slightly. Marketing spend was above plan.",
            Outcome(
                score=-1,
                comment="the board wants three bullet points with numbers first, no prose paragraphs",
                correction="Use at most three bullet points, each starting with the key number.",
            ),
        ),
        "Write the summary of the annual budget review for the board members.",
        ("bullet",),
    ),
    Case(
        "vpn-port",
        _ep(
            "Which port does our office VPN use?",
            "The VPN uses port 443.",
            Outcome(score=-1, correction="Our office VPN uses 1194/udp (OpenVPN), not 443."),
        ),
        "My VPN client asks for a port number, what do I enter?",
        ("1194",),
    ),
    Case(
        "slow-sql",
        _ep(
            "The query SELECT * FROM orders WHERE customer_id = 42 takes 9 seconds. Why?",
            "Probably the server is overloaded; try again later.",
            Outcome(
                score=-1,
                comment="EXPLAIN showed a sequential scan",
                correction="EXPLAIN showed a full table scan: add an index on orders(customer_id).",
            ),
            [
                ToolStep(
                    tool="sql", input="EXPLAIN SELECT * FROM orders WHERE customer_id = 42", output="Seq Scan on orders"
                )
            ],
        ),
        "Looking up invoices by account_id is really slow in Postgres, what should I check?",
        ("index", "explain"),
    ),
    Case(
        "deploy-migrations",
        _ep(
            "Deploy release 2.4 of the billing service.",
            "Deployed 2.4; the service restarted but now returns 500 errors.",
            Outcome(
                score=-1,
                comment="the new code expected a column that did not exist yet",
                correction="Run the database migrations before restarting the service on the new release.",
            ),
            [
                ToolStep(tool="deploy", input={"service": "billing", "version": "2.4"}, output="restarted"),
                ErrorStep(error_type="ProgrammingError", message="column invoices.tax_code does not exist"),
            ],
        ),
        "Roll out version 3.1 of the accounts service to production.",
        ("migration",),
    ),
    Case(
        "timezone",
        _ep(
            "Our standup is 9:00 in New York. What time is that in Berlin?",
            "It is at 14:00 in Berlin.",
            Outcome(
                score=-1,
                comment="in late March the US is already on daylight saving time and Europe not yet",
                correction="15:00 is wrong too in summer; check both zones' daylight saving dates: "
                "the offset is 5 hours most of the year but 4 hours for a few weeks in March and October/November.",
            ),
        ),
        "If a call is at 10:00 in Chicago, when is it in London?",
        ("daylight", "dst", "saving"),
    ),
    Case(
        "recipe-scaling",
        _ep(
            "This recipe serves 4 and needs 300 g flour and 2 eggs. How much for 6 people?",
            "For 6 people: 450 g flour and 3 eggs.",
            Outcome(score=1, comment="exactly, scale every ingredient by 6/4"),
        ),
        "My cake recipe is for 8 servings; I need to make it for 12. How do I adjust it?",
        ("scale", "multiply", "factor", "ratio", "1.5", "/"),
    ),
    Case(
        "python-mutable-default",
        _ep(
            "Why does my function def add(item, items=[]) keep old items between calls?",
            "It is probably a caching bug in your Python installation.",
            Outcome(
                score=-1,
                correction="Default arguments are evaluated once; use items=None and create a new list inside.",
            ),
        ),
        "My Python function with a dict default parameter remembers values from previous calls, why?",
        ("none", "evaluated once", "mutable"),
    ),
    Case(
        "clarifying-question",
        _ep(
            "Book a meeting room for tomorrow.",
            "Happy to. For how many people, and at what time?",
            Outcome(score=1, comment="good: asking for size and time first avoided a wrong booking"),
        ),
        "Reserve a conference room for the team offsite planning.",
        ("ask", "clarif", "how many", "time"),
    ),
    Case(
        "stock-price-from-memory",
        _ep(
            "What is Apple's stock price right now?",
            "Apple's stock price is $150.",
            Outcome(
                score=-1,
                comment="that is an old price; prices change every second",
                correction="Use the market_data tool for live prices; never quote prices from memory.",
            ),
        ),
        "How much is one Tesla share trading at today?",
        ("market_data", "tool", "live", "memory", "real-time"),
    ),
]


@dataclass
class CaseResult:
    name: str
    failed: bool
    lessons: list[str]
    own_lesson: bool
    repaired: bool
    related_hit: bool
    retrieved: str


def run_cases(engine: ExperienceEngine, cases: list[Case] = CASES) -> list[CaseResult]:
    """Record every case into ``engine`` one after another (each distilled before the next, as in a live
    app), then ask each related request. Returns one result per case."""
    ids: list[str] = []
    for case in cases:
        ids.append(engine.record(case.episode))
        engine.run_pending()
    active = [e for e, _ in engine.store.scan(statuses=[ExperienceStatus.ACTIVE])]
    failed = {ep.id for ep, _, _ in engine.queue.list(EpisodeStatus.FAILED)}
    results: list[CaseResult] = []
    for case, eid in zip(cases, ids):
        mine = [e for e in active if eid in e.provenance.source_episode_ids]
        hits = engine.retrieve(case.related, k=3)
        text = " ".join(f"{h.experience.applicability} {h.experience.content}" for h in hits).lower()
        results.append(
            CaseResult(
                name=case.name,
                failed=eid in failed,
                lessons=[e.content for e in mine],
                own_lesson=any(e.provenance.source_episode_ids == [eid] for e in mine),
                repaired=any(e.provenance.repairs for e in mine),
                related_hit=any(t.lower() in text for t in case.transfer),
                retrieved=text[:300],
            )
        )
    return results
