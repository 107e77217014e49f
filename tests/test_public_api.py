"""The public surface is pinned: changing it must be a decision, not an accident."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PINNED = {
    "expscale_core": {
        "LLM",
        "Action",
        "CachedEmbedder",
        "CollectionMismatchError",
        "ConfigError",
        "Decision",
        "Distiller",
        "Embedder",
        "EmbedderError",
        "EdgeExperienceStore",
        "EngineStats",
        "Episode",
        "EpisodeDraft",
        "EpisodeQueue",
        "EpisodeRecorder",
        "EpisodeStatus",
        "ErrorStep",
        "Experience",
        "ExperienceEngine",
        "ExperienceKind",
        "ExperienceStatus",
        "ExperienceStore",
        "ExpscaleError",
        "ExpscaleSettings",
        "HashEmbedder",
        "LLMDistiller",
        "LLMError",
        "LLMOutputError",
        "LLMStep",
        "Message",
        "MiniLMEmbedder",
        "ObservationStep",
        "OpenAIEmbedder",
        "OpenAILLM",
        "Outcome",
        "Provenance",
        "QdrantExperienceStore",
        "QueueError",
        "ScopeError",
        "RefineReport",
        "RetrievalStep",
        "RulesDistiller",
        "ScoredExperience",
        "Scope",
        "StoreError",
        "StoreLockedError",
        "ToolStep",
        "format_experiences",
        "redact_episode",
        "DEFAULT_HEADER",
        "episodes_from_messages",
        "render_experience",
    },
    "expscale_core.testing": {"FlakyStore", "HashEmbedder", "RecordedRequest", "ScriptedLLM", "make_engine"},
    "expscale_core.embed": {
        "CachedEmbedder",
        "Embedder",
        "HashEmbedder",
        "MiniLMEmbedder",
        "OpenAIEmbedder",
        "ProbingEmbedder",
        "normalize",
    },
    "expscale_core.store": {
        "EdgeExperienceStore",
        "Embedding",
        "ExperienceStore",
        "Keys",
        "QdrantExperienceStore",
        "Vector",
    },
    "expscale_core.distill": {
        "Action",
        "DistillCandidate",
        "DistillOutput",
        "Decision",
        "Distiller",
        "LLMDistiller",
        "RulesDistiller",
        "distill_output_model",
    },
    "expscale_core.eval": {
        "ARMS",
        "QA",
        "ArmResult",
        "Cluster",
        "EvalConfig",
        "LLMReader",
        "OracleReader",
        "Reader",
        "ScenarioResult",
        "Task",
        "load_comqa",
        "load_nq_open",
        "load_sample",
        "load_webquestions",
        "related",
        "repetitive",
        "run_scenario",
        "saturation",
    },
    "langchain_expscale": {
        "ExperienceCallbackHandler",
        "ExperienceMiddleware",
        "ExperienceRetriever",
        "ExperienceState",
        "ExpscaleEmbeddings",
        "LangChainEmbedder",
        "with_experience",
    },
    "llamaindex_expscale": {
        "ExperienceMemoryBlock",
        "ExperiencePostprocessor",
        "ExpscaleEmbedding",
        "Instrumentation",
        "LlamaIndexEmbedder",
        "instrument",
    },
}


@pytest.mark.parametrize("module", sorted(PINNED))
def test_all_is_pinned(module: str) -> None:
    mod = importlib.import_module(module)
    assert set(mod.__all__) == PINNED[module]
    assert len(mod.__all__) == len(set(mod.__all__)), "duplicate names in __all__"
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.__all__ lists {name} but it is missing"


def test_core_imports_no_framework() -> None:
    code = (
        "import sys, expscale_core, expscale_core.testing, expscale_core.cli;"
        "bad = [m for m in sys.modules if m.startswith(('langchain', 'llama_index'))];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_import_has_no_side_effects(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code = "import logging, expscale_core; assert not logging.getLogger().handlers; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert result.stdout.strip() == "ok", result.stderr
    assert list(tmp_path.iterdir()) == [], "importing wrote files"


def test_error_tree() -> None:
    import expscale_core as ec

    for cls in (ec.ConfigError, ec.StoreError, ec.EmbedderError, ec.LLMError, ec.QueueError):
        assert issubclass(cls, ec.ExpscaleError)
    assert issubclass(ec.CollectionMismatchError, ec.StoreError)
    assert issubclass(ec.StoreLockedError, ec.StoreError)
    assert issubclass(ec.LLMOutputError, ec.LLMError)
