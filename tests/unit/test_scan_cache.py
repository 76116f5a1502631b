"""The compiled scan database kept between processes (gateway.policy.scancache)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from gateway.policy import scan, scancache
from gateway.policy.scan import Expression, ScanDatabase


@pytest.fixture(autouse=True)
def private_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


# Written backwards, as the scan reads text; Hyperscan refuses the lookbehind.
EXPRESSIONS = [
    Expression("word", "olleh"),
    Expression("word", "dlrow"),
    Expression("bad", "(?<=x)"),
]


def _not_compiled(expressions: object) -> None:
    raise AssertionError("compiled again instead of loaded from the cache")


def test_a_second_database_of_the_same_expressions_is_loaded_not_compiled(
    private_temp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = ScanDatabase(EXPRESSIONS)
    assert first.anywhere == {"bad"}  # Hyperscan refuses it: it may match anywhere
    [kept] = list(private_temp.glob("bsm-gateway-scan-*/*.hsdb"))
    assert kept.stat().st_mode & 0o077 == 0 and kept.parent.stat().st_mode & 0o777 == 0o700
    monkeypatch.setattr(scan, "_compiled", _not_compiled)
    second = ScanDatabase(EXPRESSIONS)  # compiling now fails: it must come from the cache
    assert second.anywhere == {"bad"}
    found = second.scan("say hello")  # the scan reads the text reversed
    assert found.at("word") == [4]


def test_a_damaged_or_foreign_cache_is_compiled_anew(private_temp: Path) -> None:
    ScanDatabase(EXPRESSIONS)
    [kept] = list(private_temp.glob("bsm-gateway-scan-*/*.hsdb"))
    kept.write_bytes(b"\x00\x00\x00\x02[]not a database")
    assert ScanDatabase(EXPRESSIONS).scan("say hello").at("word") == [4]
    # A folder others may write to is not read.
    os.chmod(kept.parent, 0o777)
    assert scancache.load(kept.stem) is None
