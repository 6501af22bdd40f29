"""Fault tests get their own real server (never the shared one): they restart it, flush it or
run it out of memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.toolkit import PrivateServer


@pytest.fixture
def private_server(tmp_path: Path) -> Iterator[PrivateServer]:
    server = PrivateServer(tmp_path / "redis")
    try:
        yield server
    finally:
        server.stop()
