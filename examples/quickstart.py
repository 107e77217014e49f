"""Quickstart: record episodes with feedback, let expscale distill them, retrieve what it learned.

Runs offline with the local MiniLM embedder. Set EXPSCALE_LLM__MODEL (and EXPSCALE_LLM__BASE_URL /
EXPSCALE_LLM__API_KEY) to distill with an LLM instead of the no-LLM rules.
"""

from __future__ import annotations

import sys
import tempfile

from expscale_core import Episode, ExperienceEngine, ExpscaleSettings


def main(data_dir: str) -> str:
    settings = ExpscaleSettings(data_dir=data_dir)
    with ExperienceEngine.from_settings(settings) as engine:
        run = engine.record(Episode(input="What port does our VPN use?", output="443"))
        engine.feedback(run, score=-1, correction="1194/udp")  # the user corrects the assistant
        engine.drain(timeout=60)
        block = engine.format(engine.retrieve("which port is the vpn on?"))
    print(block)
    return block


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="expscale-"))
