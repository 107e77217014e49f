"""`expscale stats` reports memory quality, from what is persisted, not from one process's counters."""

from __future__ import annotations

import json
from pathlib import Path

from expscale_core import Episode, Experience, ExperienceEngine, ExpscaleSettings, OpenAILLM
from expscale_core.testing import HashEmbedder, ScriptedLLM

EMB = HashEmbedder()


def _lesson(text: str) -> str:
    return json.dumps({"candidates": [{"kind": "fact", "content": text, "applicability": "q"}]})


def test_stats_report_quality_and_llm_totals_across_processes(tmp_path: Path) -> None:
    settings = ExpscaleSettings(data_dir=tmp_path, embedder={"provider": "hash"})
    for run in range(2):  # two "processes" on one data dir
        server = ScriptedLLM([_lesson(f"lesson {run}")])
        llm = OpenAILLM(server.client, model="m")
        with ExperienceEngine.from_settings(settings, llm=llm, autostart=False) as engine:
            engine.record(Episode(id=f"e{run}", input=f"question {run}?", output="a"))  # no verdict: one call
            engine.run_pending()
    with ExperienceEngine.from_settings(settings, autostart=False) as engine:
        twins = [Experience(kind="fact", content="The VPN port is 1194.") for _ in range(2)]
        engine.store.upsert([(e, EMB.embed([e.content])[0]) for e in twins])
        hits = engine.retrieve("The VPN port is 1194.", episode_id="e0", min_score=0.5)
        engine.feedback("e0", -1)
        engine.run_pending()
        st = engine.stats()
    assert st.llm_calls == 2 and st.llm_prompt_tokens > 0, "counted over both processes"
    q = st.quality
    assert q.near_duplicate_rate == round(2 / st.experiences["active"], 4), "only the two twins are duplicates"
    assert hits and q.served_harmful == len(hits) and q.helpful_rate == 0.0
    assert q.utility_p10 <= q.utility_p50 <= q.utility_p90
