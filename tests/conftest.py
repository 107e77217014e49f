from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest
from expscale_core import ExperienceEngine
from expscale_core.testing import make_engine


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unit tests never leave the machine: connecting anywhere but loopback fails loudly."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: object) -> object:
        host = address[0] if isinstance(address, tuple) else str(address)
        if self.family == socket.AF_UNIX or host in ("127.0.0.1", "::1", "localhost"):
            return real_connect(self, address)  # type: ignore[arg-type]
        if os.environ.get("QDRANT_URL"):
            return real_connect(self, address)  # type: ignore[arg-type]
        raise OSError(f"test tried to reach {address}; tests must stay offline")

    monkeypatch.setattr(socket.socket, "connect", guarded)


@pytest.fixture
def engine() -> Iterator[ExperienceEngine]:
    with make_engine() as eng:
        yield eng
