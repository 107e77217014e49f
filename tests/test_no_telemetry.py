"""The default embedder writes nothing outside the data dir: no telemetry files in a fresh HOME."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def test_the_default_embedder_writes_nothing_to_home(tmp_path: Path) -> None:
    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    code = (
        "import sys\nfrom expscale_core import Episode, ExperienceEngine, ExpscaleSettings\n"
        "with ExperienceEngine.from_settings(ExpscaleSettings(data_dir=sys.argv[1])) as engine:\n"
        "    print(engine.embedder.model_id, len(engine.embedder.embed(['hello'])[0]))\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"} | {"HOME": str(home)}
    env.pop("XDG_CACHE_HOME", None)
    result = subprocess.run(
        [sys.executable, "-c", code, str(data)], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "all-MiniLM-L6-v2-onnx 384" in result.stdout
    assert [p for p in home.rglob("*")] == [], "something was written to HOME"
