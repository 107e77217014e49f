from __future__ import annotations

import json

import pytest
from expscale_core import CachedEmbedder, EmbedderError, MiniLMEmbedder, OpenAIEmbedder
from expscale_core.testing import HashEmbedder, ScriptedLLM


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def test_hash_embedder_is_deterministic_normalized_and_discriminative() -> None:
    e = HashEmbedder(128)
    a, b, c = e.embed(["reset my password", "how to reset the password", "weather in Lisbon"])
    assert e.embed(["reset my password"])[0] == a
    assert abs(_cos(a, a) - 1) < 1e-9
    assert _cos(a, b) > _cos(a, c) + 0.2


class CountingEmbedder(HashEmbedder):
    def __init__(self) -> None:
        super().__init__(32)
        self.batches: list[int] = []

    def embed(self, texts):  # type: ignore[no-untyped-def]
        self.batches.append(len(texts))
        return super().embed(texts)


def test_cached_embedder_batches_and_caches_repeats() -> None:
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, cache_size=100, batch_size=3)
    texts = [f"t{i}" for i in range(7)]
    first = cached.embed([*texts, "t0"])
    assert inner.batches == [3, 3, 1]
    assert first[0] == first[-1]
    assert cached.embed(texts) == first[:7]
    assert inner.batches == [3, 3, 1], "repeated texts come from the cache"


def test_minilm_runs_offline_and_understands_paraphrases() -> None:
    e = MiniLMEmbedder()
    a, b, c = e.embed(
        [
            "what year did hitler become chancellor of germany?",
            "hitler became chancellor of germany in what year?",
            "how do I bake sourdough bread",
        ]
    )
    assert len(a) == e.dimension == 384
    assert _cos(a, b) > 0.8 > 0.4 > _cos(a, c)


def test_minilm_missing_model_says_how_to_fix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(EmbedderError, match="EXPSCALE_EMBEDDER__MODEL_PATH"):
        MiniLMEmbedder(model_path=tmp_path / "nope.onnx")


def test_openai_embedder_talks_to_a_compatible_server() -> None:
    def reply(req):  # type: ignore[no-untyped-def]
        n = len(req.body["input"])
        data = [{"object": "embedding", "index": i, "embedding": [float(i + 1), 0.0, 0.0]} for i in reversed(range(n))]
        return json.dumps(
            {"object": "list", "data": data, "model": "emb", "usage": {"prompt_tokens": 1, "total_tokens": 1}}
        )

    server = ScriptedLLM(reply)
    e = OpenAIEmbedder(server.client, model="emb")
    vecs = e.embed(["a", "b"])
    assert vecs == [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
    assert e.dimension == 3
    assert server.requests[0].path.endswith("/embeddings")


def test_openai_embedder_errors_are_wrapped() -> None:
    e = OpenAIEmbedder(ScriptedLLM([400]).client, model="emb")
    with pytest.raises(EmbedderError, match="emb"):
        e.embed(["x"])


def test_packaged_model_file_is_checked_against_its_published_hash(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import hashlib

    from expscale_core.embed.minilm import _check_file, _published_sha256, default_model_path

    packaged = default_model_path()
    assert packaged is not None and _published_sha256(packaged) is not None
    assert _published_sha256(tmp_path / "mine.onnx") is None, "a user's own file is not held to the package hash"
    tampered = tmp_path / "model.onnx"
    tampered.write_bytes(b"not the model")
    with pytest.raises(EmbedderError, match="force-reinstall"):
        _check_file(tampered, "0" * 64)
    _check_file(tampered, hashlib.sha256(b"not the model").hexdigest())
