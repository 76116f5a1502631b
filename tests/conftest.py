from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.obs.log import configure_logging
from tests.support.databases import database_url
from tests.support.gateway import RunningGateway, running_gateway


@pytest.fixture(autouse=True, scope="session")
def _logging() -> None:
    configure_logging("info", "json")


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Every storage test runs on both stores."""
    with database_url(request.param, tmp_path) as url:
        yield url


@pytest.fixture
def gw(tmp_path: Path, db_url: str) -> Iterator[RunningGateway]:
    """A gateway delivering into a maildir under tmp_path."""
    with running_gateway(tmp_path, db_url) as running:
        yield running
