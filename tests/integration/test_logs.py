"""No log line carries a real address, not even a database error's detail."""

from __future__ import annotations

import io
import json

import pytest
from sqlalchemy.exc import IntegrityError

from gateway.core.clock import SystemClock
from gateway.obs.log import configure_logging, get_logger
from gateway.storage.migrate import open_database
from gateway.storage.registry import Registry
from gateway.storage.schema import Buyer


def test_database_error_in_a_log_line_names_no_address(db_url: str) -> None:
    database = open_database(db_url)
    stream = io.StringIO()
    try:
        Registry(database, "relay.example.test", SystemClock()).add_buyer("anna@mail.example")
        with pytest.raises(IntegrityError) as error, database.transaction() as session:
            session.add(
                Buyer(address="anna@mail.example", opted_out=False, created_at=SystemClock().now())
            )
        configure_logging("info", "json", stream)
        get_logger("test").error(
            "commit_failed", exc_info=error.value, note="from anna@mail.example"
        )
    finally:
        configure_logging("info", "json")
        database.dispose()
    [line] = stream.getvalue().splitlines()
    record = json.loads(line)
    assert "IntegrityError" in record["exception"]
    assert "anna@mail.example" not in line
    assert record["note"] == "from <address>"
