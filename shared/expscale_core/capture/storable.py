"""Making whatever capture was handed storable: every value JSON can hold, every text valid UTF-8 of bounded size.

A captured value may be anything (a lone surrogate, a numpy array, a cycle, bytes, an object, a structure nested
thousands deep). The episode queue fixes each episode this way as it writes it, one episode at a time, so one such
value can neither fail the batch it was committed with nor cost the caller's thread; redaction, which must walk
the values, fixes them first. Every fix is visible in the stored text (a replacement character or a marker),
never silent.
"""

from __future__ import annotations

import dataclasses
import enum
import re
import uuid
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

from pydantic import BaseModel

from expscale_core.scope import Scope

__all__ = [
    "DEFAULT_MAX_DEPTH",
    "DEFAULT_MAX_FIELD_CHARS",
    "storable_model",
    "storable_text",
    "storable_value",
    "text_of",
]

DEFAULT_MAX_FIELD_CHARS = 200_000
DEFAULT_MAX_DEPTH = 32
_SURROGATE = re.compile("[\ud800-\udfff]")
_ATOMS = (bool, int, float, type(None), datetime, date, time, timedelta, uuid.UUID, enum.Enum)
_CYCLE = "[cycle cut]"


def storable_text(text: str, max_chars: int = DEFAULT_MAX_FIELD_CHARS) -> str:
    """``text`` as valid UTF-8 (a lone surrogate becomes U+FFFD), shortened in the middle past ``max_chars``.

    Example:
        >>> storable_text("half an emoji \\ud83d") == "half an emoji \\ufffd"
        True
        >>> storable_text("a" * 10 + "b" * 10, max_chars=12)
        'aaaaa[… 10 characters cut …]bbbbb'
    """
    if len(text) <= max_chars and text.isascii():  # the common case: nothing to do, checked at C speed
        return text
    if len(text) > max_chars:
        # Keep the head (the question) and the tail (the conclusion); the middle of a huge dump teaches least.
        half = max(max_chars // 2 - 1, 0)
        cut = len(text) - 2 * half
        text = f"{text[:half]}[… {cut} characters cut …]{text[len(text) - half :]}"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = _SURROGATE.sub("\ufffd", text)
    return text


def storable_value(value: Any, *, max_chars: int = DEFAULT_MAX_FIELD_CHARS, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """``value`` as plain JSON-able data: mappings, lists, strings, numbers, with bounded depth and no cycles.

    Foreign objects become their text form (numpy arrays via ``tolist`` when small), bytes are decoded with
    replacement, a cycle or anything deeper than ``max_depth`` is replaced by a marker.
    """
    return _walk(value, max_chars, max_depth, 0, set())


def _walk(value: Any, max_chars: int, max_depth: int, depth: int, active: set[int]) -> Any:
    if isinstance(value, str):
        return storable_text(value, max_chars)
    if isinstance(value, float) and value != value:  # NaN is not JSON; None says "no number" honestly
        return None
    if isinstance(value, _ATOMS):
        return value
    if depth >= max_depth:
        return f"[nested deeper than {max_depth} levels cut]"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return storable_text(bytes(value).decode("utf-8", errors="replace"), max_chars)
    key = id(value)
    if key in active:
        return _CYCLE
    active.add(key)
    try:
        if isinstance(value, BaseModel):
            value = _plain_fields(value)
        elif dataclasses.is_dataclass(value) and not isinstance(value, type):
            value = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
        if isinstance(value, Mapping):
            return {
                storable_text(k if isinstance(k, str) else text_of(k), max_chars): _walk(
                    v, max_chars, max_depth, depth + 1, active
                )
                for k, v in list(value.items())
            }
        if isinstance(value, (list, tuple, set, frozenset)):
            return [_walk(v, max_chars, max_depth, depth + 1, active) for v in list(value)]
        tolist = getattr(value, "tolist", None)  # numpy arrays and scalars, without importing numpy
        size = getattr(value, "size", None)
        if callable(tolist) and isinstance(size, int) and size <= 10_000:
            try:
                return _walk(tolist(), max_chars, max_depth, depth, active)
            except Exception:
                pass
        return storable_text(text_of(value), max_chars)
    finally:
        active.discard(key)


def _plain_fields(model: BaseModel) -> dict[str, Any]:
    return {name: getattr(model, name, None) for name in type(model).model_fields}


def text_of(value: Any) -> str:
    """``str(value)``, or a placeholder naming its type when its ``__str__`` raises."""
    try:
        return str(value)
    except Exception:  # a broken __str__ must not cost the episode
        return f"<unprintable {type(value).__name__}>"


def storable_model(model: Any, *, max_chars: int = DEFAULT_MAX_FIELD_CHARS, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """A copy of a pydantic model (an episode and its steps) whose every field is storable; the model itself
    when nothing needed fixing, so the common case allocates nothing."""
    update: dict[str, Any] = {}
    fields = model.__dict__  # a pydantic model's field values, without an attribute lookup per field
    for name in _field_names(type(model)):
        value = fields[name]
        kind = type(value)
        # The usual fields, judged by exact type before anything slower: capture runs this on the caller's thread.
        if kind is str and len(value) <= max_chars and value.isascii():
            continue
        if value is None or kind in _FAST_ATOMS or ((kind is list or kind is dict) and not value):
            continue
        fixed = _field(value, max_chars, max_depth)
        if fixed is not value:
            update[name] = fixed
    return model.model_copy(update=update) if update else model


_NAMES: dict[type, tuple[str, ...]] = {}
_FAST_ATOMS = frozenset({bool, int, datetime})


def _field_names(cls: type) -> tuple[str, ...]:
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(cls.model_fields)  # type: ignore[attr-defined]
    return names


def _field(value: Any, max_chars: int, max_depth: int) -> Any:
    if isinstance(value, str):
        return storable_text(value, max_chars)  # the same object when nothing changed
    if value is None or isinstance(value, _ATOMS):
        return value
    if type(value) is Scope:  # one of a handful per process, immutable: judged once
        return _storable_scope(value, max_chars)
    if isinstance(value, BaseModel):
        return storable_model(value, max_chars=max_chars, max_depth=max_depth)
    if isinstance(value, list) and all(isinstance(v, BaseModel) for v in value):
        items = [storable_model(v, max_chars=max_chars, max_depth=max_depth) for v in value]
        return value if all(a is b for a, b in zip(items, value)) else items
    if _plain(value, max_chars, max_depth):  # JSON-ready already (a tool's dict of strings and numbers)
        return value
    fixed = storable_value(value, max_chars=max_chars, max_depth=max_depth)
    return value if _same(fixed, value) else fixed


_CLEAN_SCOPES: dict[int, Scope] = {}
"""Scopes found storable as they are, by identity (each kept alive here, so its id cannot be reused)."""


def _storable_scope(scope: Scope, max_chars: int) -> Scope:
    if _CLEAN_SCOPES.get(id(scope)) is scope:  # a capture's scope is the recorder's, the same object each time
        return scope
    fixed: Scope = storable_model(scope, max_chars=max_chars)
    if fixed is scope:
        if len(_CLEAN_SCOPES) >= 1024:
            _CLEAN_SCOPES.clear()
        _CLEAN_SCOPES[id(scope)] = scope
    return fixed


def _plain(value: Any, max_chars: int, depth: int) -> bool:
    """Storable as it is: no copy needed. A cycle runs out of ``depth`` and is then walked properly."""
    if isinstance(value, str):
        return len(value) <= max_chars and value.isascii()
    if value is None or isinstance(value, (bool, int)) or (isinstance(value, float) and value == value):
        return True
    if depth <= 0:
        return False
    if type(value) is dict:
        return all(
            isinstance(k, str) and _plain(k, max_chars, 0) and _plain(v, max_chars, depth - 1) for k, v in value.items()
        )
    if type(value) is list:
        return all(_plain(v, max_chars, depth - 1) for v in value)
    return False


def _same(a: Any, b: Any) -> bool:
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # numpy's elementwise ==, or a cycle compared with itself
        return False
