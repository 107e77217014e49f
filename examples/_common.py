"""Shared setup for the examples: a data dir, and a real chat model only when one is configured."""

from __future__ import annotations

import os
import sys
import tempfile
from typing import Any


def data_dir() -> str:
    return sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="expscale-example-")


def real_model_configured() -> bool:
    return bool(os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL"))


def real_chat_model() -> Any:
    """ChatOpenAI against OPENAI_BASE_URL / OPENAI_API_KEY (model from OPENAI_MODEL, default gpt-4o-mini)."""
    try:
        from langchain_openai import ChatOpenAI
    except ImportError as exc:
        raise SystemExit("a real model needs langchain-openai: pip install langchain-openai") from exc
    return ChatOpenAI(model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"), temperature=0)


def real_llama_llm() -> Any:
    """LlamaIndex's OpenAI LLM against OPENAI_BASE_URL / OPENAI_API_KEY (model from OPENAI_MODEL)."""
    try:
        from llama_index.llms.openai_like import OpenAILike
    except ImportError as exc:
        raise SystemExit(
            "a real model needs llama-index-llms-openai-like: pip install llama-index-llms-openai-like"
        ) from exc
    return OpenAILike(
        model=os.environ.get("OPENAI_MODEL", "gpt-4o-mini"),
        api_base=os.environ.get("OPENAI_BASE_URL", "https://api.openai.com/v1"),
        api_key=os.environ.get("OPENAI_API_KEY", "not-needed"),
        is_chat_model=True,
        is_function_calling_model=True,
    )
