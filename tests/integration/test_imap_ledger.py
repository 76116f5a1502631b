"""The mailbox sources' table family on both stores: the lease, the state, what was taken."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from gateway.storage import retention
from gateway.storage.imap import MailboxLedger, Taken, record_taken
from gateway.storage.migrate import open_database

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_one_holder_at_a_time_until_its_lease_runs_out(db_url: str) -> None:
    database = open_database(db_url)
    ledger = MailboxLedger(database)
    try:
        assert ledger.acquire("s", "one", at(0), at(60))
        assert ledger.acquire("s", "one", at(20), at(80))  # renewed
        assert not ledger.acquire("s", "two", at(79), at(139))
        assert ledger.acquire("s", "two", at(81), at(141))  # run out: taken over
        assert not ledger.acquire("s", "one", at(82), at(142))
        ledger.release("s", "two")
        assert ledger.acquire("s", "one", at(83), at(143))
    finally:
        database.dispose()


def test_the_state_is_the_holders_and_changes_only_when_it_changes(db_url: str) -> None:
    database = open_database(db_url)
    ledger = MailboxLedger(database)
    try:
        ledger.acquire("s", "one", at(0), at(60))
        ledger.set_state("s", "one", "idle", "", at(1), uidvalidity=5, ok=True)
        ledger.set_state("s", "one", "idle", "", at(2), ok=True)
        [state] = ledger.states()
        assert (state.state, state.changed_at, state.last_ok_at) == ("idle", at(1), at(2))
        assert state.uidvalidity == 5
        ledger.set_state("s", "one", "backoff", "timeout", at(3))
        ledger.set_state("s", "two", "idle", "", at(4))  # not the holder: nothing written
        [state] = ledger.states()
        assert (state.state, state.detail, state.changed_at) == ("backoff", "timeout", at(3))
    finally:
        database.dispose()


def test_a_place_is_taken_once_and_bytes_are_recognised_anywhere(db_url: str) -> None:
    database = open_database(db_url)
    ledger = MailboxLedger(database)
    first = Taken("s", 7, 1, "d" * 64, "<m@x>", 11)
    try:
        with database.writing() as connection:
            record_taken(connection, [first], at(0))
        with pytest.raises(IntegrityError), database.writing() as connection:
            record_taken(connection, [first], at(1))
        assert ledger.known("s", 7, [1, 2]) == {1}
        assert ledger.known("s", 8, [1]) == set()
        assert ledger.taken_before("s", "d" * 64, "<m@x>") == 11
        assert ledger.taken_before("other", "d" * 64, "<m@x>") is None
        ledger.seen_again(Taken("s", 8, 4, "d" * 64, "<m@x>", 11), at(2))
        ledger.seen_again(Taken("s", 8, 4, "d" * 64, "<m@x>", 11), at(3))  # once
        assert ledger.known("s", 8, [4]) == {4}
        assert ledger.states() == []  # no lease was ever taken: the source has no row yet
    finally:
        database.dispose()


def test_a_purge_forgets_its_records_places_and_digests(db_url: str) -> None:
    database = open_database(db_url)
    ledger = MailboxLedger(database)
    try:
        with database.writing() as connection:
            record_taken(connection, [Taken("s", 7, 1, "d" * 64, "<m@x>", 11)], at(0))
            record_taken(connection, [Taken("s", 7, 2, "e" * 64, "<n@x>", 12)], at(0))
        with database.writing() as connection:
            retention.purge(connection, [11], at(1))
        assert ledger.known("s", 7, [1, 2]) == {2}
        assert ledger.taken_before("s", "d" * 64, "<m@x>") is None
    finally:
        database.dispose()
